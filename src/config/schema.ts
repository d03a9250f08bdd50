/**
 * The config file format (JSON): the one place that says which fields exist, their types,
 * ranges and defaults, and how each field is worded when it is wrong. Rules between fields
 * (unique names, paths, CHAP secret sources, burst lengths) are in config/cross-checks.ts;
 * building the EffectiveConfig (derived identifiers, resolved paths) in config/derive.ts.
 *
 * The schema is plain data — no transforms — so that `configJsonSchema()` (the `schema` command,
 * docs/target.schema.json) describes exactly the file format that is accepted. Refinements
 * that JSON Schema cannot express (byte lengths, sizes that overflow, advertise addresses) are
 * ignored by the export and checked here all the same.
 *
 * Sizes are ALWAYS binary (1024-based), like targetcli and qemu-img (config/size.ts).
 */
import * as z from 'zod';
import type { IscsiSettings } from './types.js';
import { iscsiNameProblem, ISCSI_NAME_RE, MAX_ISCSI_NAME_BYTES } from './iscsi-name.js';
import { describe, expected, quote } from './messages.js';
import { parseHostPort, isWildcardHost } from './portal.js';
import { parseSize, SIZE_RE } from './size.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const DEFAULT_PORTALS = ['0.0.0.0:3260'];
/** Where `serve` listens for `glfs-target status` when the file does not say (the embedded default uses its data directory). */
export const DEFAULT_CONTROL_SOCKET = '/run/glfs-target/control.sock';
/** Where the metrics and health listener binds when `metrics` is given without an address: loopback only. */
export const DEFAULT_METRICS_PORT = 9260;
export const DEFAULT_METRICS_ADDRESS = `127.0.0.1:${DEFAULT_METRICS_PORT}`;
export const DEFAULT_BLOCK_SIZE = 512;
const DEFAULT_VENDOR = 'GLFS';
const DEFAULT_PRODUCT = 'glfs-target';
const DEFAULT_REVISION = '0001';

/**
 * IEEE company ID used in derived NAA designators: 02-6C-66. First octet 0x02 has the U/L
 * bit set, i.e. it lies in the IEEE "AAI" (administratively assigned) quadrant, which no
 * vendor is registered for, so derived identifiers cannot collide with real hardware IDs.
 * 6C 66 is ASCII "lf".
 */
export const NAA_COMPANY_ID = '026c66';

export const DEFAULT_ISCSI_SETTINGS: Readonly<IscsiSettings> = Object.freeze({
  cmdWindow: 128,
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  maxOutstandingR2T: 1,
  immediateData: true,
  initialR2T: false,
  headerDigest: ['None', 'CRC32C'],
  dataDigest: ['None', 'CRC32C'],
  loginTimeout: 15,
  nopInInterval: 10,
  nopInTimeout: 10,
  maxPendingLogins: 64,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
  maxPendingLoginsPerAddress: 16,
  authBackoffAfter: 5,
  authBackoffInitial: 1,
  authBackoffMax: 60,
  maxDataInFlight: 64 * 1024 * 1024,
  backendTimeout: 43,
  backendCallsPerLun: 32,
  busyPollMicroseconds: 100,
}) as Readonly<IscsiSettings>;

// ---------------------------------------------------------------------------------------------
// Field kinds

type ErrorFn = (issue: z.core.$ZodRawIssue) => string | undefined;
/**
 * Run a check only on a value of the right type that passed every earlier check, so that a
 * field gets one message (zod runs length checks on any value with a length, e.g. a list
 * where a string belongs).
 */
const ifValidSoFar = { when: (payload: z.core.ParsePayload) => payload.issues.length === 0 };
/** A check's wording, and the check only where ifValidSoFar. */
const only = (error: ErrorFn | string) => ({ error, ...ifValidSoFar });

function integer(min: number, max: number) {
  const range = `an integer from ${min} to ${max}`;
  const outOfRange = (issue: z.core.$ZodRawIssue) => `${String(issue.input)} is out of range; use ${range}`;
  const notInteger = expected(range);
  return z
    .int({ error: (issue) => (issue.code === 'invalid_type' ? notInteger(issue) : outOfRange(issue)) })
    .min(min, only(outOfRange))
    .max(max, only(outOfRange));
}

const bool = () => z.boolean({ error: expected('true or false') });

const nonEmptyString = () => z.string({ error: expected('a string') }).min(1, only('must not be empty'));

function oneOf<const T extends readonly [z.core.util.Literal, ...z.core.util.Literal[]]>(values: T) {
  return z.literal(values, { error: expected(values.map((x) => JSON.stringify(x)).join(' or ')) });
}

function printableAscii(max: number, example: string) {
  const wrong = only((issue) => `${quote(issue.input as string)} must be 1 to ${max} printable ASCII characters, e.g. ${quote(example)}`);
  return z
    .string({ error: expected(`a string such as ${quote(example)}`) })
    .min(1, wrong)
    .max(max, wrong)
    .regex(/^[\x20-\x7e]*$/, wrong);
}

function printableUtf8(maxBytes: number) {
  const wrong = only((issue) => `${quote(issue.input as string)} must be 1 to ${maxBytes} bytes of text without control characters`);
  return z
    .string({ error: expected('a string') })
    .regex(/^[^\x00-\x1f\x7f]+$/, wrong)
    .refine((v) => Buffer.byteLength(v) <= maxBytes, wrong);
}

/** RFC 7143 §4.2.7 iSCSI names, in the RFC 3722 normalized (lower-case) form (config/iscsi-name.ts). */
function iscsiName(use: string) {
  const wrong = only((issue) => {
    const v = issue.input as string;
    const problem = iscsiNameProblem(v);
    if (problem === 'upper-case') return `${quote(v)} is not an iSCSI name: iSCSI names are lower-case; use ${quote(v.toLowerCase())}`;
    if (problem) return `${quote(v)} is not an iSCSI name: it is ${problem}`;
    return `${quote(v)} is not an iSCSI name; ${use}`;
  });
  return z
    .string({ error: expected('an iSCSI name', use) })
    .max(MAX_ISCSI_NAME_BYTES, wrong)
    .regex(ISCSI_NAME_RE, wrong);
}

const TARGET_NAME_FIX = 'use e.g. "iqn.2016-06.org.gluster:node1"';
const INITIATOR_NAME_FIX = 'use e.g. "iqn.1994-05.com.redhat:8277148d16b2" or "*"';

const targetName = iscsiName(TARGET_NAME_FIX);
const initiatorName = z.union([z.literal('*'), iscsiName(INITIATOR_NAME_FIX)], { error: expected('an iSCSI name', INITIATOR_NAME_FIX) });

const sizeProblem = only((issue) => {
  const v = issue.input;
  if (v === undefined) return undefined;
  if (typeof v === 'number') return `${v} is not a size; use a positive whole number of bytes or a string such as "8G"`;
  if (typeof v === 'string') return `${quote(v)} is not a size; use e.g. "8G"`;
  return `expected a size such as "8G" or a number of bytes, got ${describe(v)}`;
});
const size = z
  .union([z.int(sizeProblem).positive(sizeProblem), z.string(sizeProblem).regex(SIZE_RE, sizeProblem)], sizeProblem)
  .refine((v) => parseSize(v) !== undefined, sizeProblem);

const naaProblem = only(
  (issue) =>
    `${describe(issue.input)} is not an NAA IEEE Registered Extended identifier; use 32 hex digits starting with 6, e.g. "6${NAA_COMPANY_ID}0123456789abcdef012345678"`,
);
/** SPC-4 §7.8.6.6.5 NAA IEEE Registered Extended designator (NAA 6), as 32 hex digits. */
const naa = z.string(naaProblem).regex(/^6[0-9a-fA-F]{31}$/, naaProblem);

const envNameProblem = only((issue) => `${describe(issue.input)} is not an environment variable name; use e.g. "GLFS_CHAP_SECRET"`);
const envName = z.string(envNameProblem).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, envNameProblem);

const portalAddress = z
  .string({ error: expected('"host:port" such as "0.0.0.0:3260"') })
  .refine((v) => parseHostPort(v) !== undefined, { error: (issue) => `${quote(issue.input as string)} is not host:port; use e.g. "0.0.0.0:3260" or "[::]:3260"` })
  .describe('"host:port", "[IPv6]:port", or a host alone (port 3260)');

const DIGESTS = ['CRC32C', 'None'] as const;
type Digest = (typeof DIGESTS)[number];
const isDigest = (x: unknown): x is Digest => (DIGESTS as readonly unknown[]).includes(x);
const DIGEST_FIX = 'use a list of "CRC32C" and/or "None" in order of preference, e.g. ["None", "CRC32C"]';
/**
 * RFC 7143 §13.1 HeaderDigest/DataDigest: the values accepted, in order of preference. Checked
 * as a whole so that a wrong element is reported at the list.
 */
const digestList = z
  .array(z.unknown(), { error: () => `expected a non-empty list; ${DIGEST_FIX}` })
  .superRefine((list, ctx) => {
    const wrong = list.findIndex((x) => !isDigest(x));
    if (list.length === 0) ctx.addIssue({ code: 'custom', message: `expected a non-empty list; ${DIGEST_FIX}` });
    else if (wrong >= 0) ctx.addIssue({ code: 'custom', message: `${describe(list[wrong])} is not a digest; ${DIGEST_FIX}` });
    else if (new Set(list).size !== list.length) ctx.addIssue({ code: 'custom', message: `lists a digest twice; ${DIGEST_FIX}` });
  })
  .meta({ items: { enum: [...DIGESTS] }, minItems: 1, uniqueItems: true });

// ---------------------------------------------------------------------------------------------
// Objects

const secretValue = z.string({ error: 'expected a string (the value is not shown)' }).min(1, only('must not be empty'));

const credentialsShape = {
  username: nonEmptyString().describe('CHAP user name (CHAP_N)'),
  secret: secretValue.optional().describe('The secret itself; at least 12 bytes (RFC 7143 §12.1.3). Prefer secretFile or secretEnv.'),
  secretFile: nonEmptyString().optional().describe('File holding the secret (one trailing newline is ignored); relative to the config file'),
  secretEnv: envName.optional().describe('Environment variable holding the secret'),
};
const CredentialsSchema = z
  .strictObject(credentialsShape)
  .meta({ id: 'chapCredentials', description: 'CHAP credentials: username and exactly one of secret, secretFile, secretEnv' });
const ChapSchema = z
  .strictObject({ ...credentialsShape, mutual: CredentialsSchema.optional().describe('Credentials the target answers with (mutual CHAP); the secret must differ') })
  .meta({ id: 'chap', description: 'CHAP credentials the initiator must present: username and exactly one of secret, secretFile, secretEnv' });

const AclSchema = z.strictObject({
  initiator: initiatorName.describe('Initiator name (iqn./eui./naa.), or "*" for any initiator'),
  readOnly: bool().default(false).describe('Export the LUNs read-only to this initiator'),
  chap: ChapSchema.optional().describe('CHAP the initiator must pass (RFC 7143 §12.1.3); see docs/authentication.md'),
});

const LunSchema = z.strictObject({
  lun: integer(0, 16383).describe('LUN number, unique per target'),
  path: nonEmptyString().describe('Backing file; relative to the config file. A missing file is an error unless create is true'),
  create: bool().default(false).describe('Create the file (sparse, at size) when it does not exist; without it a missing file is refused, so an unmounted volume never becomes a blank disk'),
  volume: nonEmptyString().optional().describe('Gluster volume the file must be on: served only from a fuse.glusterfs mount of this volume'),
  size: size
    .optional()
    .describe('Size: bytes, or a string with K/M/G/T/P (always 1024-based), e.g. "8G"; a multiple of blockSize. Omitted = the existing file\'s size. Raised and reloaded, the LUN grows (a lower one is refused)'),
  readOnly: bool().default(false).describe('Refuse writes (write-protected LUN)'),
  blockSize: oneOf([512, 4096] as const).default(DEFAULT_BLOCK_SIZE).describe('Logical block size in bytes'),
  writeCache: bool().default(true).describe('Report a write-back cache (WCE); false = every write is on stable storage before its status'),
  vendor: printableAscii(8, DEFAULT_VENDOR).default(DEFAULT_VENDOR).describe('INQUIRY vendor identification (SPC-4 §6.6.2)'),
  product: printableAscii(16, DEFAULT_PRODUCT).default(DEFAULT_PRODUCT).describe('INQUIRY product identification'),
  revision: printableAscii(4, DEFAULT_REVISION).default(DEFAULT_REVISION).describe('INQUIRY product revision level'),
  serial: printableAscii(40, '0123456789abcdef01234567')
    .optional()
    .describe('Unit serial number (VPD page 0x80); default derived from sha256(iqn + ":" + lun)'),
  naa: naa.optional().describe('NAA designator (VPD page 0x83), 32 hex digits starting with 6; default derived from sha256(iqn + ":" + lun)'),
});

const TargetSchema = z.strictObject({
  iqn: targetName.describe('Target name, e.g. "iqn.2016-06.org.gluster:node1"; unique'),
  alias: printableUtf8(255).optional().describe('TargetAlias sent at login (RFC 7143 §13.6)'),
  luns: z
    .array(LunSchema)
    .min(1, only('at least one LUN is required, e.g. [{ "lun": 0, "path": "/mnt/gluster/disk.img" }]'))
    .describe('Logical units of this target'),
  acl: z
    .array(AclSchema)
    .default(() => [{ initiator: '*', readOnly: false }])
    .describe('Initiators allowed to log in; omitted = any initiator, [] = none'),
});

const iscsiSetting = (key: keyof IscsiSettings, min: number, max: number, description: string) =>
  integer(min, max)
    .default(DEFAULT_ISCSI_SETTINGS[key] as number)
    .describe(description);

/** Login keys (RFC 7143 §13) and the server's own limits. */
const IscsiSchema = z.strictObject({
  cmdWindow: iscsiSetting('cmdWindow', 1, 65535, 'Command window depth: MaxCmdSN - ExpCmdSN + 1 (RFC 7143 §4.2.2.1)'),
  maxRecvDataSegmentLength: iscsiSetting('maxRecvDataSegmentLength', 512, 16777215, 'MaxRecvDataSegmentLength the target declares (RFC 7143 §13.12)'),
  maxBurstLength: iscsiSetting('maxBurstLength', 512, 16777215, 'MaxBurstLength offered (RFC 7143 §13.13)'),
  firstBurstLength: iscsiSetting('firstBurstLength', 512, 16777215, 'FirstBurstLength offered, at most maxBurstLength (RFC 7143 §13.14)'),
  maxOutstandingR2T: iscsiSetting('maxOutstandingR2T', 1, 65535, 'MaxOutstandingR2T offered (RFC 7143 §13.17)'),
  loginTimeout: iscsiSetting('loginTimeout', 1, 3600, 'Seconds a connection may stay in the login phase'),
  nopInInterval: iscsiSetting('nopInInterval', 0, 3600, 'Seconds of idleness before a NOP-In ping (0 = never)'),
  nopInTimeout: iscsiSetting('nopInTimeout', 1, 3600, 'Seconds to wait for the NOP-Out answer before dropping the connection'),
  maxPendingLogins: iscsiSetting('maxPendingLogins', 1, 65535, 'Most connections in the login phase at once'),
  defaultTime2Wait: iscsiSetting('defaultTime2Wait', 0, 3600, 'DefaultTime2Wait offered (RFC 7143 §13.15)'),
  defaultTime2Retain: iscsiSetting('defaultTime2Retain', 0, 3600, 'DefaultTime2Retain offered (RFC 7143 §13.16)'),
  maxPendingLoginsPerAddress: iscsiSetting('maxPendingLoginsPerAddress', 1, 65535, 'Most connections from one source address in the login phase at once'),
  authBackoffAfter: iscsiSetting('authBackoffAfter', 0, 1000, 'Wrong CHAP responses from one initiator name and address before their refusals are delayed (0 = never); correct logins are never delayed or refused'),
  authBackoffInitial: iscsiSetting('authBackoffInitial', 1, 3600, 'First delay of a refusal in seconds; doubles with each further wrong CHAP response'),
  authBackoffMax: iscsiSetting('authBackoffMax', 1, 86400, 'Longest delay of a refusal in seconds (at most 5 s whatever the value)'),
  maxDataInFlight: iscsiSetting('maxDataInFlight', 1024 * 1024, 2 ** 40, 'Bytes of command data all connections may hold in memory before they stop reading'),
  backendTimeout: iscsiSetting('backendTimeout', 1, 3600, 'Seconds a LUN\'s storage has to answer a read, write or flush before the command fails with NOT READY (02h/08h/01h); keep it above gluster\'s network.ping-timeout'),
  backendCallsPerLun: iscsiSetting('backendCallsPerLun', 1, 1024, 'Calls of one LUN in the file I/O thread pool at once: what one hung mount can hold of it (below UV_THREADPOOL_SIZE)'),
  busyPollMicroseconds: iscsiSetting('busyPollMicroseconds', 0, 100000, 'Microseconds the event loop keeps polling after a PDU instead of sleeping, adapted to the traffic: saves the wake-up of a sleeping CPU per command at a steady queue depth, and stops on its own when the initiator goes quiet (0 = never poll)'),
  immediateData: bool().default(DEFAULT_ISCSI_SETTINGS.immediateData).describe('ImmediateData offered (RFC 7143 §13.11)'),
  initialR2T: bool().default(DEFAULT_ISCSI_SETTINGS.initialR2T).describe('InitialR2T offered (RFC 7143 §13.10)'),
  headerDigest: digestList.default(() => [...DEFAULT_ISCSI_SETTINGS.headerDigest]).describe('HeaderDigest values accepted, in order of preference'),
  dataDigest: digestList.default(() => [...DEFAULT_ISCSI_SETTINGS.dataDigest]).describe('DataDigest values accepted, in order of preference'),
});

const PortalObjectSchema = z
  .strictObject({
    address: portalAddress.describe('Listen address "host:port"'),
    advertise: nonEmptyString().optional().describe('Address announced in SendTargets instead of the one connected to (NAT); port defaults to the address\'s'),
    tpgt: integer(1, 65535).optional().describe('Target portal group tag; default the portal\'s position (1, 2, ...)'),
  })
  .superRefine(
    (portal, ctx) => {
      if (portal.advertise === undefined) return;
      const hp = parseHostPort(portal.advertise, parseHostPort(portal.address)!.port);
      if (!hp) {
        ctx.addIssue({ code: 'custom', path: ['advertise'], message: `${quote(portal.advertise)} is not host:port; use e.g. "10.0.2.100:3260"` });
      } else if (isWildcardHost(hp.host)) {
        ctx.addIssue({
          code: 'custom',
          path: ['advertise'],
          message: `${quote(portal.advertise)} cannot be advertised; use an address initiators can reach, e.g. "10.0.2.100:3260"`,
        });
      }
    },
    { when: (payload) => payload.issues.length === 0 },
  );

const MetricsSchema = z
  .strictObject({
    address: z
      .string({ error: expected('"host:port" such as "127.0.0.1:9260"') })
      .refine((v) => parseHostPort(v, DEFAULT_METRICS_PORT) !== undefined, { error: (issue) => `${quote(issue.input as string)} is not host:port; use e.g. "127.0.0.1:9260" or "0.0.0.0:9260"` })
      .default(DEFAULT_METRICS_ADDRESS)
      .describe('Listen address "host:port" of the HTTP listener; "0.0.0.0:9260" exposes it to the network'),
  })
  .describe('HTTP listener for Prometheus /metrics, /healthz and /readyz; off when omitted');

const PortalSchema = z.union([portalAddress, PortalObjectSchema], {
  error: expected('"host:port" or { "address": "host:port", "advertise": "host:port", "tpgt": 1 }'),
});

export const ConfigFileSchema = z
  .strictObject(
    {
      $schema: z.string().optional().describe('JSON Schema of this file, for editors, e.g. "./target.schema.json"; ignored by the server'),
      discovery: z
        .strictObject({ chap: ChapSchema.optional().describe('CHAP for discovery sessions; see docs/authentication.md') })
        .optional()
        .describe('Discovery (SendTargets) sessions: CHAP when chap is set, otherwise open'),
      portals: z
        .array(PortalSchema)
        .min(1, only('at least one portal is required; use e.g. ["0.0.0.0:3260"] (or leave portals out)'))
        .default(() => [...DEFAULT_PORTALS])
        .describe('Listen addresses: "host:port" ("[v6]:port"; port default 3260) or { address, advertise, tpgt }'),
      targets: z
        .array(TargetSchema)
        .min(1, only('at least one target is required, e.g. [{ "iqn": "iqn.2016-06.org.gluster:node1", "luns": [...] }]'))
        .describe('iSCSI targets, each with its LUNs and ACL'),
      iscsi: IscsiSchema.prefault({}).describe('iSCSI login keys and server limits'),
      controlSocket: nonEmptyString()
        .optional()
        .describe(`Unix socket \`glfs-target status\` talks to (root only, mode 0600); relative to the config file. Default ${DEFAULT_CONTROL_SOCKET}`),
      metrics: MetricsSchema.optional(),
      dataDir: nonEmptyString()
        .optional()
        .describe('Directory for files the server creates; relative to the config file. Default $GLFS_TARGET_DATA_DIR or ./data'),
      logLevel: oneOf(LOG_LEVELS).default('info').describe('Log level'),
    },
    { error: (issue) => (issue.code === 'invalid_type' && issue.input !== undefined ? `the configuration must be a JSON object, got ${describe(issue.input)}` : undefined) },
  )
  .describe('glfs-target configuration file');

/** The config file after field validation and defaults. */
export type ConfigFile = z.output<typeof ConfigFileSchema>;

/** JSON Schema (draft 2020-12) of the config file: what `glfs-target schema` prints. */
export function configJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(ConfigFileSchema, { io: 'input', target: 'draft-2020-12' }), title: 'glfs-target configuration' };
}
