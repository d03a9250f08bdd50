import { CommandTable } from './command-table.js';
import { PROVISIONING_COMMANDS } from './provisioning.js';
import { SBC_COMMANDS } from './sbc.js';
import { COMPARE_COMMANDS } from './sbc-compare.js';
import { SPC_COMMANDS } from './spc.js';
import { TPG_COMMANDS } from './target-port-groups.js';
import { XCOPY_COMMANDS } from './xcopy.js';

/** The one dispatch table: every implemented command, and the data RSOC reports. */
export const COMMANDS = new CommandTable([...SPC_COMMANDS, ...SBC_COMMANDS, ...PROVISIONING_COMMANDS, ...COMPARE_COMMANDS, ...XCOPY_COMMANDS, ...TPG_COMMANDS]);
