import type { IscsiSettings } from '../config/types.js';

/**
 * Operational parameter negotiation, RFC 7143 §6.2 (rules) and §13 (the keys).
 * One Negotiator per login; `respond` answers the initiator's key=value pairs and records the
 * outcome in `params`.
 */

/** The negotiated values one session (and its connection) runs with. */
export interface SessionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  maxConnections: number;
  initialR2T: boolean;
  immediateData: boolean;
  /** What the initiator can receive: our Data-In / text segments must not exceed it. */
  initiatorMaxRecvDataSegmentLength: number;
  /** What we declared: the largest segment the initiator may send us. */
  targetMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxOutstandingR2T: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
}

/** RFC 7143 §13 defaults, in force for every key not negotiated. */
export function defaultParams(): SessionParams {
  return {
    headerDigest: false,
    dataDigest: false,
    maxConnections: 1,
    initialR2T: true,
    immediateData: true,
    initiatorMaxRecvDataSegmentLength: 8192,
    targetMaxRecvDataSegmentLength: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
    defaultTime2Wait: 2,
    defaultTime2Retain: 20,
    maxOutstandingR2T: 1,
    dataPduInOrder: true,
    dataSequenceInOrder: true,
    errorRecoveryLevel: 0,
  };
}

type Kind = 'and' | 'or' | 'min' | 'max' | 'list';

interface KeyRule {
  kind: Kind;
  /** Valid numeric range (inclusive) for min/max keys. */
  range?: [number, number];
  /** §13: "Irrelevant when: SessionType=Discovery". */
  irrelevantInDiscovery: boolean;
  /** Our side of the negotiation. */
  ours(s: IscsiSettings): string;
  apply(p: SessionParams, result: string): void;
}

const yes = (v: string): boolean => v === 'Yes';
const bool = (b: boolean): string => (b ? 'Yes' : 'No');
const digestList = (l: Array<'CRC32C' | 'None'>): string => l.join(',');

/** Negotiated (not declarative) operational keys of RFC 7143 §13. */
const RULES: Readonly<Record<string, KeyRule>> = {
  // §13.1
  HeaderDigest: { kind: 'list', irrelevantInDiscovery: false, ours: (s) => digestList(s.headerDigest), apply: (p, r) => { p.headerDigest = r === 'CRC32C'; } },
  DataDigest: { kind: 'list', irrelevantInDiscovery: false, ours: (s) => digestList(s.dataDigest), apply: (p, r) => { p.dataDigest = r === 'CRC32C'; } },
  // §13.2 — one connection per session (no MC/S).
  MaxConnections: { kind: 'min', range: [1, 65535], irrelevantInDiscovery: true, ours: () => '1', apply: (p, r) => { p.maxConnections = Number(r); } },
  // §13.10
  InitialR2T: { kind: 'or', irrelevantInDiscovery: true, ours: (s) => bool(s.initialR2T), apply: (p, r) => { p.initialR2T = yes(r); } },
  // §13.11
  ImmediateData: { kind: 'and', irrelevantInDiscovery: true, ours: (s) => bool(s.immediateData), apply: (p, r) => { p.immediateData = yes(r); } },
  // §13.13
  MaxBurstLength: { kind: 'min', range: [512, 16777215], irrelevantInDiscovery: true, ours: (s) => String(s.maxBurstLength), apply: (p, r) => { p.maxBurstLength = Number(r); } },
  // §13.14
  FirstBurstLength: { kind: 'min', range: [512, 16777215], irrelevantInDiscovery: true, ours: (s) => String(s.firstBurstLength), apply: (p, r) => { p.firstBurstLength = Number(r); } },
  // §13.15, §13.16
  DefaultTime2Wait: { kind: 'max', range: [0, 3600], irrelevantInDiscovery: false, ours: (s) => String(s.defaultTime2Wait), apply: (p, r) => { p.defaultTime2Wait = Number(r); } },
  DefaultTime2Retain: { kind: 'min', range: [0, 3600], irrelevantInDiscovery: false, ours: (s) => String(s.defaultTime2Retain), apply: (p, r) => { p.defaultTime2Retain = Number(r); } },
  // §13.17
  MaxOutstandingR2T: { kind: 'min', range: [1, 65535], irrelevantInDiscovery: true, ours: (s) => String(s.maxOutstandingR2T), apply: (p, r) => { p.maxOutstandingR2T = Number(r); } },
  // §13.18, §13.19 — we deliver and accept data in order only, so we always answer Yes (OR).
  DataPDUInOrder: { kind: 'or', irrelevantInDiscovery: true, ours: () => 'Yes', apply: (p, r) => { p.dataPduInOrder = yes(r); } },
  DataSequenceInOrder: { kind: 'or', irrelevantInDiscovery: true, ours: () => 'Yes', apply: (p, r) => { p.dataSequenceInOrder = yes(r); } },
  // §13.20 — ERL 0 only.
  ErrorRecoveryLevel: { kind: 'min', range: [0, 2], irrelevantInDiscovery: false, ours: () => '0', apply: (p, r) => { p.errorRecoveryLevel = Number(r); } },
  // §13.23 (RFC 7143): we implement the RFC 3720 task reporting semantics.
  TaskReporting: { kind: 'list', irrelevantInDiscovery: true, ours: () => 'RFC3720', apply: () => {} },
  // §13.24: iSCSIProtocolLevel, numerical with the lower value (RFC 7144 §2.1); we are level 1 (RFC 7143).
  iSCSIProtocolLevel: { kind: 'min', range: [0, 31], irrelevantInDiscovery: false, ours: () => '1', apply: () => {} },
  // RFC 7145 §6.3 (iSER): not over TCP.
  RDMAExtensions: { kind: 'and', irrelevantInDiscovery: true, ours: () => 'No', apply: () => {} },
};

/** Declarative keys the initiator sends (§13): recorded, not answered. */
const INITIATOR_DECLARATIVE = new Set(['InitiatorName', 'InitiatorAlias', 'SessionType', 'TargetName']);
/** Keys only a target may send: an initiator sending them gets Reject. */
const TARGET_ONLY = new Set(['TargetAlias', 'TargetAddress', 'TargetPortalGroupTag']);
/** Security keys (§12): handled by the authentication step, not here. */
export const SECURITY_KEYS = new Set(['AuthMethod', 'CHAP_A', 'CHAP_I', 'CHAP_C', 'CHAP_N', 'CHAP_R']);

export class NegotiationError extends Error {}

export class Negotiator {
  readonly params: SessionParams = defaultParams();
  readonly declared = new Map<string, string>();
  private readonly seen = new Set<string>();
  private declaredOwnMrdsl = false;

  constructor(
    private readonly settings: IscsiSettings,
    private discovery: boolean,
  ) {
    this.params.targetMaxRecvDataSegmentLength = settings.maxRecvDataSegmentLength;
  }

  setDiscovery(discovery: boolean): void {
    this.discovery = discovery;
  }

  /** The largest data segment the initiator takes (its MaxRecvDataSegmentLength: 8192 until declared, §13.12). */
  get initiatorMaxRecvDataSegmentLength(): number {
    return this.params.initiatorMaxRecvDataSegmentLength;
  }

  /**
   * Answer one batch of operational keys; returns the response pairs. Throws NegotiationError for
   * what RFC 7143 §6.2 makes a login failure (a key negotiated twice).
   */
  respond(pairs: Array<[string, string]>): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    // MaxBurstLength first: the FirstBurstLength answer must not exceed it (§13.14).
    const ordered = [...pairs].sort((a, b) => rank(a[0]) - rank(b[0]));
    for (const [key, value] of ordered) {
      if (SECURITY_KEYS.has(key)) continue;
      // §6.2: a key may be negotiated only once per login.
      if (this.seen.has(key)) throw new NegotiationError(`key ${key} sent twice`);
      this.seen.add(key);
      if (INITIATOR_DECLARATIVE.has(key)) {
        this.declared.set(key, value);
        continue;
      }
      if (value === 'NotUnderstood' || value === 'Irrelevant' || value === 'Reject') continue;
      if (key === 'MaxRecvDataSegmentLength') {
        // §13.12: declarative, per direction.
        const n = parseNumber(value);
        if (n === null || n < 512 || n > 16777215) { out.push([key, 'Reject']); continue; }
        this.params.initiatorMaxRecvDataSegmentLength = n;
        out.push([key, String(this.settings.maxRecvDataSegmentLength)]);
        this.declaredOwnMrdsl = true;
        continue;
      }
      if (TARGET_ONLY.has(key)) { out.push([key, 'Reject']); continue; }
      // §13.25: markers are obsolete; answer No for IFMarker/OFMarker, Reject for the intervals.
      if (key === 'IFMarker' || key === 'OFMarker') { out.push([key, 'No']); continue; }
      if (key === 'IFMarkInt' || key === 'OFMarkInt') { out.push([key, 'Reject']); continue; }
      const rule = RULES[key];
      if (rule === undefined) { out.push([key, 'NotUnderstood']); continue; }
      if (this.discovery && rule.irrelevantInDiscovery) { out.push([key, 'Irrelevant']); continue; }
      let result = negotiate(rule, value, rule.ours(this.settings));
      if (key === 'FirstBurstLength' && result !== 'Reject') result = String(Math.min(Number(result), this.params.maxBurstLength));
      if (result !== 'Reject') rule.apply(this.params, result);
      out.push([key, result]);
    }
    return out;
  }

  /** Declarations the target adds to its final operational response if not yet sent. */
  finalDeclarations(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    if (!this.declaredOwnMrdsl) {
      out.push(['MaxRecvDataSegmentLength', String(this.settings.maxRecvDataSegmentLength)]);
      this.declaredOwnMrdsl = true;
    }
    return out;
  }

  /** Consistency fixes after negotiation (§13.14: FirstBurstLength ≤ MaxBurstLength). */
  finish(): SessionParams {
    const p = this.params;
    if (p.firstBurstLength > p.maxBurstLength) p.firstBurstLength = p.maxBurstLength;
    return p;
  }
}

function rank(key: string): number {
  return key === 'MaxBurstLength' ? 0 : 1;
}

function parseNumber(v: string): number | null {
  // §5.1: numerical values are decimal, or hex with 0x (and up to 64 bits); we accept what fits.
  if (/^[0-9]+$/.test(v)) return Number(v);
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) return Number.parseInt(v.slice(2), 16);
  return null;
}

function negotiate(rule: KeyRule, offered: string, ours: string): string {
  switch (rule.kind) {
    case 'and':
    case 'or': {
      if (offered !== 'Yes' && offered !== 'No') return 'Reject';
      const a = offered === 'Yes';
      const b = ours === 'Yes';
      return bool(rule.kind === 'and' ? a && b : a || b);
    }
    case 'min':
    case 'max': {
      const n = parseNumber(offered);
      const [lo, hi] = rule.range!;
      if (n === null || n < lo || n > hi) return 'Reject';
      const o = Number(ours);
      return String(rule.kind === 'min' ? Math.min(n, o) : Math.max(n, o));
    }
    case 'list': {
      // §6.2.1: the responder picks the first value of the offer that it supports.
      const supported = new Set(ours.split(','));
      for (const v of offered.split(',')) if (supported.has(v)) return v;
      return 'Reject';
    }
  }
}
