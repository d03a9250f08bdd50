/**
 * iSCSI name validation (RFC 7143 §4.2.7, RFC 3720 §3.2.6, RFC 3722 stringprep profile).
 *
 * Accepted forms:
 *   iqn.yyyy-mm.reversed.domain[:anything]   e.g. iqn.2016-06.org.gluster:node1
 *   eui.<16 hex digits>                      e.g. eui.02004567a425678d
 *   naa.<16 or 32 hex digits>                e.g. naa.52004567ba64678d
 *
 * After the RFC 3722 stringprep the only ASCII characters left in a name are lower-case
 * letters, digits, '-', '.' and ':'. Names that are not already in that normalized form are
 * refused (with a hint showing the lower-case spelling) rather than silently rewritten, so
 * that the configured name is byte-for-byte what initiators see and send. Non-ASCII
 * (internationalized) names are not supported. At most 223 bytes.
 */

export const MAX_ISCSI_NAME_BYTES = 223;

const IQN_RE = /^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*(:[a-z0-9.:-]+)?$/;
const EUI_RE = /^eui\.[0-9a-f]{16}$/;
const NAA_RE = /^naa\.([0-9a-f]{16}|[0-9a-f]{32})$/;
/** Any of the three forms (ASCII only, so at most MAX_ISCSI_NAME_BYTES characters is the byte limit). */
export const ISCSI_NAME_RE = new RegExp([IQN_RE, EUI_RE, NAA_RE].map((re) => `(?:${re.source})`).join('|'));

export function isValidIscsiName(name: string): boolean {
  return iscsiNameProblem(name) === undefined;
}

/**
 * Why `name` is not a valid iSCSI name, as a short phrase to append to `"<name>" is not an
 * iSCSI name`, or undefined when it is valid. "" means "no particular reason to give".
 */
export function iscsiNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name, 'utf8') > MAX_ISCSI_NAME_BYTES) {
    return `longer than ${MAX_ISCSI_NAME_BYTES} bytes`;
  }
  if (ISCSI_NAME_RE.test(name)) return undefined;
  const lower = name.toLowerCase();
  if (lower !== name && ISCSI_NAME_RE.test(lower)) {
    return 'upper-case';
  }
  return '';
}
