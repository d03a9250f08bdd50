/**
 * `glfs-target status` for a person: an indented tree in the manner of `tgt-admin --show` and
 * targetcli's `sessions detail` — targets, their LUNs, ACL and sessions, then the discovery
 * sessions and the counters.
 */
import type { IoStatus, LunStatus, ServerStatus, SessionStatus, TargetStatus } from './server-status.js';

export function statusText(s: ServerStatus): string {
  const out: string[] = [];
  const srv = s.server;
  out.push(`glfs-target ${srv.version} (pid ${srv.pid}), node ${srv.node} (target port group ${srv.group}), up ${duration(srv.uptimeSeconds)}`);
  out.push(`Config: ${srv.configFile ?? 'built-in default'}`);
  out.push(`Portals: ${srv.portals.map((p) => `${p.address} (tpgt ${p.tpgt})`).join(', ')}`);
  for (const t of s.targets) {
    out.push('', ...targetLines(t, s.sessions.filter((x) => x.target === t.iqn)));
  }
  const discovery = s.sessions.filter((x) => x.type === 'Discovery');
  if (discovery.length > 0) {
    out.push('', 'Discovery sessions:');
    for (const x of discovery) out.push(...sessionLines(x, '    '));
  }
  const c = s.counters;
  const refusals = Object.entries(c.loginRefusals).map(([why, n]) => `${why} ${n}`);
  out.push('', 'Counters:');
  out.push(`    Logins: ${c.logins.normal} normal, ${c.logins.discovery} discovery`);
  out.push(`    Login refusals: ${refusals.length > 0 ? refusals.join(', ') : 'none'}`);
  out.push(`    Data in flight: ${bytes(c.dataInFlight.bytes)} of ${bytes(c.dataInFlight.limitBytes)} (peak ${bytes(c.dataInFlight.peakBytes)})`);
  return `${out.join('\n')}\n`;
}

function targetLines(t: TargetStatus, sessions: SessionStatus[]): string[] {
  const out = [`Target: ${t.iqn}${t.alias !== null ? ` (alias ${t.alias})` : ''}`, '    LUN information:'];
  for (const l of t.luns) out.push(...lunLines(l));
  out.push('    ACL information:');
  if (t.acl.length === 0) out.push('        (empty: nobody may log in)');
  for (const a of t.acl) out.push(`        ${a.initiator === '*' ? '* (any initiator)' : a.initiator}${a.readOnly ? ', read-only' : ''}${a.chap ? ', CHAP' : ''}`);
  out.push(`    Sessions: ${sessions.length === 0 ? 'none' : ''}`.trimEnd());
  for (const x of sessions) out.push(...sessionLines(x, '        '));
  return out;
}

function lunLines(l: LunStatus): string[] {
  const others = l.alua.groups.filter((g) => g.id !== l.alua.group).map((g) => `group ${g.id} ${g.state}`);
  return [
    `        LUN: ${l.lun}`,
    `            Backing file: ${l.path}`,
    `            Size: ${bytes(l.sizeBytes)} (${l.sizeBytes} bytes), block size ${l.blockSize}`,
    `            Read-only: ${yesNo(l.readOnly)}, write cache: ${yesNo(l.writeCache)}`,
    `            Online: ${yesNo(l.online)}`,
    `            Owner: ${l.owner ?? 'none'}; ALUA: ${l.alua.state} (group ${l.alua.group})${others.length > 0 ? `; ${others.join(', ')}` : ''}`,
    `            Reads: ${io(l.io.read)}`,
    `            Writes: ${io(l.io.write)}`,
    `            Other commands: ${io(l.io.other, false)}`,
  ];
}

function sessionLines(x: SessionStatus, indent: string): string[] {
  const auth = x.authentication === 'none' ? 'none' : x.authentication === 'chap' ? 'CHAP' : 'CHAP, mutual';
  return [
    `${indent}Initiator: ${x.initiator}${x.initiatorAlias !== null ? ` alias: ${x.initiatorAlias}` : ''}`,
    `${indent}    ISID: ${x.isid}, TSIH: ${x.tsih}${x.readOnly ? ', read-only' : ''}`,
    `${indent}    Address: ${x.remote} -> ${x.portal} (tpgt ${x.tpgt})`,
    `${indent}    Authentication: ${auth}`,
    `${indent}    Digests: header ${x.headerDigest}, data ${x.dataDigest}`,
    `${indent}    MaxBurstLength ${x.maxBurstLength}, FirstBurstLength ${x.firstBurstLength}, ImmediateData ${yesNo(x.immediateData)}, InitialR2T ${yesNo(x.initialR2T)}`,
    `${indent}    MaxRecvDataSegmentLength: initiator ${x.initiatorMaxRecvDataSegmentLength}, target ${x.targetMaxRecvDataSegmentLength}`,
    `${indent}    Age: ${duration(x.ageSeconds)}, commands in flight: ${x.commandsInFlight}`,
  ];
}

function io(c: IoStatus, withBytes = true): string {
  const failures = Object.entries(c.failures).map(([why, n]) => `${why} ${n}`);
  const latency = c.commands > 0 ? `, mean ${(c.meanLatencySeconds * 1000).toFixed(2)} ms` : '';
  return `${c.commands}${withBytes ? ` (${bytes(c.bytes)})` : ''}${latency}, failed ${c.failed}${failures.length > 0 ? ` (${failures.join(', ')})` : ''}`;
}

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

/** 1024-based, as the config's sizes: "8.0 GiB". */
export function bytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const sec = seconds % 60;
  return d > 0 ? `${d}d${h}h${m}m` : h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`;
}
