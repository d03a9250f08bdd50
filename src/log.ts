/**
 * Structured logging: pino, one JSON object per line on stdout — or, for a person at a terminal,
 * one readable line per entry (pino-pretty: time, level, message, then the fields).
 *
 * Writes are synchronous (pino.destination({ sync: true })): a line is on its way to the
 * file descriptor before the call returns, so nothing is lost when the process exits right
 * after logging (fatal startup errors, signal shutdown). Hot paths log at debug/trace, which
 * are disabled by default, so the cost of synchronous writes stays out of the I/O path.
 *
 * Secrets are redacted by key name (defence in depth — code should not log them at all):
 * secret, password, CHAP_R, CHAP_C at the top level and up to four levels deep, plus the CHAP
 * fields of a whole EffectiveConfig logged as itself or under `config`.
 */
import pino from 'pino';
import { prettyFactory } from 'pino-pretty';

export type Logger = pino.Logger;

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const SECRET_KEYS = ['secret', 'password', 'CHAP_R', 'CHAP_C'];
const DEPTH_PREFIXES = ['', '*.', '*.*.', '*.*.*.', '*.*.*.*.'];
const CONFIG_PREFIXES = ['', 'config.', '*.config.'];

export const REDACT_PATHS: string[] = [
  ...DEPTH_PREFIXES.flatMap((p) => SECRET_KEYS.map((k) => p + k)),
  ...CONFIG_PREFIXES.flatMap((p) => [
    `${p}targets.*.acl.*.chap.secret`,
    `${p}targets.*.acl.*.chap.mutual.secret`,
    `${p}acl.*.chap.secret`,
    `${p}acl.*.chap.mutual.secret`,
  ]),
];

/**
 * Create the process logger. `destination` defaults to stdout (fd 1, synchronous); tests
 * pass a stream to capture lines. `pretty` turns each JSON line into a readable one before it
 * is written (still synchronously; colours as the terminal and NO_COLOR/FORCE_COLOR allow).
 */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream, format: LogFormat = 'json'): Logger {
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '***' },
    },
    format === 'pretty' ? prettyStream(out) : out,
  );
}

/** A destination that writes each JSON line as pino-pretty renders it: `[time] LEVEL: message {fields}`. */
function prettyStream(out: pino.DestinationStream): pino.DestinationStream {
  const prettify = prettyFactory({ translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
  return { write: (line: string) => void out.write(prettify(line)) };
}
