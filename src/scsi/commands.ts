import { CommandTable } from './command-table.js';
import { SBC_COMMANDS } from './sbc.js';
import { SPC_COMMANDS } from './spc.js';

/** The one dispatch table: every implemented command, and the data RSOC reports. */
export const COMMANDS = new CommandTable([...SPC_COMMANDS, ...SBC_COMMANDS]);
