import { isIP, isIPv4, isIPv6 } from 'node:net';

export const DEFAULT_ISCSI_PORT = 3260;

export interface HostPort {
  /** IPv4/IPv6 literal (IPv6 without brackets) or hostname. */
  host: string;
  port: number;
}

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i;

/**
 * Parse "host:port", "[v6addr]:port", "host", "[v6addr]" or a bare IPv6 literal ("::1",
 * port defaulted). Returns undefined when the text is not of that form, the port is not
 * 1–65535 or the host is neither an IP literal nor a valid hostname.
 */
export function parseHostPort(text: string, defaultPort = DEFAULT_ISCSI_PORT): HostPort | undefined {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (!m) return undefined;
    host = m[1]!;
    portText = m[2];
    if (!isIPv6(host)) return undefined;
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) {
      // Bare IPv6 literal without brackets: no port possible.
      if (!isIPv6(text)) return undefined;
      host = text;
    } else if (colons === 1) {
      const i = text.indexOf(':');
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else {
      host = text;
    }
    if (!isValidHost(host)) return undefined;
  }
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
  }
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

function isValidHost(host: string): boolean {
  if (host === '') return false;
  if (isIP(host)) return true;
  // Dotted digits that are not a valid IPv4 address ("1.2.3.400") are a typo, not a hostname.
  if (/^[\d.]+$/.test(host)) return false;
  return host.length <= 253 && HOSTNAME_RE.test(host);
}

/** "host:port" with IPv6 literals in brackets. */
export function formatHostPort(hp: HostPort): string {
  return isIPv6(hp.host) ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** Canonical host text for comparisons (IPv6 compressed, hostnames lower-cased). */
export function canonicalHost(host: string): string {
  if (isIPv6(host)) {
    const zone = host.indexOf('%');
    const addr = zone >= 0 ? host.slice(0, zone) : host;
    const suffix = zone >= 0 ? host.slice(zone) : '';
    try {
      return new URL(`http://[${addr}]/`).hostname.slice(1, -1) + suffix;
    } catch {
      return host.toLowerCase();
    }
  }
  return host.toLowerCase().replace(/\.$/, '');
}

export function isWildcardHost(host: string): boolean {
  const c = canonicalHost(host);
  return c === '0.0.0.0' || c === '::';
}

export function isLoopbackHost(host: string): boolean {
  const c = canonicalHost(host);
  return c === 'localhost' || c === '::1' || (isIPv4(c) && c.startsWith('127.'));
}

export function hostFamily(host: string): 4 | 6 | 0 {
  return isIPv4(host) ? 4 : isIPv6(host) ? 6 : 0;
}
