import { ChapError, ChapExchange, type ChapKeys } from '../auth/chap.js';
import type { AuthBackoff } from '../auth/backoff.js';
import type { AuthPolicy } from '../auth/service.js';
import type { AclEntry, IscsiSettings, PortalConfig } from '../config/types.js';
import { Opcode } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { loginResponseHeader } from '../pdu/target-pdus.js';
import { decodeText, encodeText, TextFormatError, type TextPairs } from '../pdu/text.js';
import { LoginFailure, LoginStatus } from './login-status.js';
import { Negotiator, NegotiationError, SECURITY_KEYS, type SessionParams } from './negotiation.js';
import type { Session, SessionAuthentication, SessionType } from './session.js';
import type { TargetNode } from './target-node.js';
import { MAX_GATHERED_TEXT, TextGatherer } from './text-gather.js';

/** Login stages (CSG/NSG), RFC 7143 §11.12.3. */
const enum Stage { Security = 0, Operational = 1, FullFeature = 3 }

/** RFC 7143 §4.2.7.1: an iSCSI name is at most 223 bytes of UTF-8. */
const MAX_ISCSI_NAME_BYTES = 223;

/** §13.12: the default MaxRecvDataSegmentLength (8192), in force for Login Responses unless the initiator declared less. */
const LOGIN_SEGMENT_DEFAULT = 8192;

/** A Login Response too long for one PDU, still being sent (§11.13.3, C bit); `next` as in `conclude`. */
interface UnsentResponse {
  rest: Buffer;
  csg: Stage;
  next: Stage | null;
}

/** What a completed login asks the server to establish. */
export interface LoginOutcome {
  type: SessionType;
  initiatorName: string;
  initiatorAlias?: string;
  isid: string;
  /** TSIH from the request: 0 for a new session, else the session to add this connection to. */
  requestedTsih: number;
  cid: number;
  target: TargetNode | null;
  acl: AclEntry | null;
  params: SessionParams;
  cmdSN: number;
  /** How the initiator proved who it is (and whether the target proved itself: mutual CHAP). */
  authentication: SessionAuthentication;
}

/** What the login needs to authenticate: credentials per ACL entry / discovery, and the back-off. */
export interface LoginAuth {
  forAcl(entry: AclEntry): AuthPolicy;
  forDiscovery(): AuthPolicy;
  readonly backoff: AuthBackoff;
}

export interface LoginContext {
  readonly settings: IscsiSettings;
  readonly portal: PortalConfig;
  /** Authentication state of the server. Absent: no CHAP (entries that ask for it refuse logins), no back-off. */
  readonly auth?: LoginAuth;
  /** Source address of the connection (authentication back-off). */
  readonly remoteAddress?: string;
  findTarget(iqn: string): TargetNode | undefined;
  /** Create (or reinstate) the session. May throw LoginFailure. */
  establish(outcome: LoginOutcome): Promise<Session>;
  /** For a login naming a TSIH: throws LoginFailure unless that session may take this connection. */
  checkExistingSession(tsih: number, cid: number, initiatorName: string, isid: string, target: TargetNode | null): void;
}

export interface LoginReply {
  header: Buffer;
  data?: Buffer;
  /** ExpCmdSN/MaxCmdSN to stamp (login requests are immediate; the window starts at their CmdSN). */
  expCmdSN: number;
  maxCmdSN: number;
  /** Set when the reply ends the login phase. */
  done?: { ok: true; outcome: LoginOutcome; session: Session } | { ok: false; failure: LoginFailure };
}

/**
 * The login phase of one connection (RFC 7143 §6.3): security stage (authentication), then
 * operational negotiation, then the transition to full feature phase. Each Login Request
 * yields exactly one Login Response.
 */
export class LoginHandler {
  private first: { isid: Buffer; isidHex: string; tsih: number; cid: number; cmdSN: number } | null = null;
  private stage: Stage | null = null;
  /** Text of the current request, gathered from C-bit PDUs (§11.12.2). */
  private readonly pendingText = new TextGatherer();
  /** Text received in this login so far: at most MAX_GATHERED_TEXT (§6.1). */
  private textReceived = 0;
  private unsent: UnsentResponse | null = null;
  /** Set when the last step failed on a wrong CHAP response (what the back-off counts). */
  private chapResponseFailed = false;
  private negotiator: Negotiator;
  private sessionType: SessionType = 'Normal';
  private initiatorName = '';
  private target: TargetNode | null = null;
  private acl: AclEntry | null = null;
  private authenticated = false;
  private sentTpgt = false;
  /** What the ACL entry (or discovery) asks for; decided when the initiator identifies itself. */
  private policy: AuthPolicy = { kind: 'none' };
  private authMethod: 'None' | 'CHAP' | null = null;
  private chap: ChapExchange | null = null;

  constructor(private readonly ctx: LoginContext) {
    this.negotiator = new Negotiator(ctx.settings, false);
  }

  /** Identity learned so far, for log lines about refusals. */
  get who(): { initiator?: string; target?: string; isid?: string } {
    return {
      ...(this.initiatorName !== '' ? { initiator: this.initiatorName } : {}),
      ...(this.target !== null ? { target: this.target.iqn } : {}),
      ...(this.first !== null ? { isid: this.first.isidHex } : {}),
    };
  }

  async handle(pdu: Pdu): Promise<LoginReply> {
    try {
      return await this.step(pdu);
    } catch (err) {
      let failure =
        err instanceof LoginFailure ? err
        : err instanceof ChapError ? new LoginFailure(LoginStatus.AuthenticationFailure, err.message)
        : err instanceof TextFormatError || err instanceof NegotiationError ? new LoginFailure(LoginStatus.InitiatorError, err.message)
        : new LoginFailure(LoginStatus.TargetError, err instanceof Error ? err.message : String(err));
      if (this.chapResponseFailed) failure = await this.holdRefusal(failure);
      return this.failureReply(pdu, failure);
    }
  }

  /**
   * A wrong CHAP response is answered only after the back-off delay of this initiator name and
   * address, which grows with its failures (src/auth/backoff.ts). A correct response never waits,
   * and nothing else (ACL refusals included) counts.
   */
  private async holdRefusal(failure: LoginFailure): Promise<LoginFailure> {
    const auth = this.ctx.auth;
    if (auth === undefined) return failure;
    const address = this.ctx.remoteAddress ?? '';
    const delayMs = auth.backoff.recordFailure(this.initiatorName, address);
    if (delayMs === 0) return failure;
    await new Promise<void>((resolve) => setTimeout(resolve, delayMs).unref());
    const n = auth.backoff.failures(this.initiatorName, address);
    return new LoginFailure(failure.status, `${failure.message}; ${n} failed CHAP responses from this initiator and address; answered after ${delayMs / 1000} s`);
  }

  private async step(pdu: Pdu): Promise<LoginReply> {
    if (pdu.opcode !== Opcode.LoginRequest) {
      throw new LoginFailure(LoginStatus.InvalidDuringLogin, `unexpected ${pdu.opcode.toString(16)} PDU during login`);
    }
    if (this.first === null) {
      // §11.12.4: we speak version 0x00 only.
      if (pdu.versionMin > 0x00) throw new LoginFailure(LoginStatus.UnsupportedVersion, `version-min ${pdu.versionMin} unsupported`);
      this.first = { isid: Buffer.from(pdu.bhs.subarray(8, 14)), isidHex: pdu.isid, tsih: pdu.tsih, cid: pdu.cid, cmdSN: pdu.cmdSN };
    } else if (pdu.isid !== this.first.isidHex || pdu.tsih !== this.first.tsih) {
      throw new LoginFailure(LoginStatus.InitiatorError, 'ISID or TSIH changed during login');
    }
    if (this.unsent !== null) return this.continueResponse(pdu, this.unsent);
    const csg = pdu.loginCsg as Stage;
    const transit = pdu.loginTransit;
    const nsg = pdu.loginNsg as Stage;
    // §11.12.3: stage rules.
    if (csg !== Stage.Security && csg !== Stage.Operational) throw new LoginFailure(LoginStatus.InitiatorError, `invalid CSG ${csg}`);
    if (this.stage !== null && csg !== this.stage) throw new LoginFailure(LoginStatus.InitiatorError, `CSG ${csg} does not continue stage ${this.stage}`);
    if (transit && pdu.loginContinue) throw new LoginFailure(LoginStatus.InitiatorError, 'T and C bits both set');
    if (transit && (nsg <= csg || (nsg as number) === 2)) throw new LoginFailure(LoginStatus.InitiatorError, `invalid transition ${csg}→${nsg}`);
    this.stage = csg;

    // §11.12 (C bit) / §6.1: text may span PDUs; answer each partial PDU with an empty response.
    // The whole login may bring MAX_GATHERED_TEXT bytes, checked before anything else (ACL, CHAP).
    this.textReceived += pdu.data.length;
    if (this.textReceived > MAX_GATHERED_TEXT) {
      throw new LoginFailure(LoginStatus.InitiatorError, `login text exceeds ${MAX_GATHERED_TEXT} bytes (RFC 7143 §6.1)`);
    }
    this.pendingText.add(pdu.data);
    if (pdu.loginContinue) return this.reply(pdu, false, csg, csg);
    const pairs = decodeText(this.pendingText.take());

    if (this.initiatorName === '') this.identify(pairs);
    const answer: TextPairs = [];
    if (csg === Stage.Security) {
      answer.push(...this.security(pairs));
    } else {
      for (const [k] of pairs) {
        if (SECURITY_KEYS.has(k)) throw new LoginFailure(LoginStatus.InitiatorError, `security key ${k} in operational stage`);
      }
      if (!this.authenticated && this.authRequired()) {
        throw new LoginFailure(
          LoginStatus.AuthenticationFailure,
          this.authMethod === null
            ? 'CHAP required, but the initiator skipped the security stage (no CHAP credentials configured on the initiator?)'
            : 'CHAP required, but authentication did not complete',
        );
      }
    }
    answer.push(...this.negotiator.respond(pairs));
    if (this.sessionType === 'Normal' && !this.sentTpgt) {
      // §13.9: the target declares its portal group tag in the first response of a normal session.
      answer.push(['TargetPortalGroupTag', String(this.ctx.portal.tpgt)]);
      if (this.target?.definition.alias !== undefined) answer.push(['TargetAlias', this.target.definition.alias]);
      this.sentTpgt = true;
    }
    // Stay in this stage unless asked to move on; in the security stage, only once authenticated.
    const next = transit && (csg !== Stage.Security || this.authenticated) ? nsg : null;
    if (next === Stage.FullFeature) answer.push(...this.negotiator.finalDeclarations());
    return this.respond(pdu, csg, next, encodeText(answer));
  }

  /** §11.13.3: a response longer than a login PDU may carry goes out in parts with the C bit (and T=0). */
  private respond(pdu: Pdu, csg: Stage, next: Stage | null, data: Buffer): Promise<LoginReply> | LoginReply {
    const limit = Math.min(LOGIN_SEGMENT_DEFAULT, this.negotiator.initiatorMaxRecvDataSegmentLength);
    if (data.length <= limit) return this.conclude(pdu, csg, next, data);
    this.unsent = { rest: data.subarray(limit), csg, next };
    return this.reply(pdu, false, csg, csg, data.subarray(0, limit), true);
  }

  /** The initiator asks for the rest of a long response with empty Login Requests of the same stage (§11.12.2, §11.13.3). */
  private continueResponse(pdu: Pdu, unsent: UnsentResponse): Promise<LoginReply> | LoginReply {
    if (pdu.data.length > 0 || pdu.loginContinue || pdu.loginCsg !== unsent.csg) {
      throw new LoginFailure(LoginStatus.InitiatorError, 'Login Request with text, C bit or another stage while the target continues its response');
    }
    this.unsent = null;
    return this.respond(pdu, unsent.csg, unsent.next, unsent.rest);
  }

  /** The last (or only) part of a response: stay in `csg` (next = null) or move to `next`, establishing the session for full feature phase. */
  private async conclude(pdu: Pdu, csg: Stage, next: Stage | null, data: Buffer): Promise<LoginReply> {
    if (next === null) return this.reply(pdu, false, csg, csg, data);
    this.stage = next;
    if (next !== Stage.FullFeature) return this.reply(pdu, true, csg, next, data);
    const first = this.first!;
    const outcome: LoginOutcome = {
      type: this.sessionType,
      initiatorName: this.initiatorName,
      isid: first.isidHex,
      requestedTsih: first.tsih,
      cid: first.cid,
      target: this.target,
      acl: this.acl,
      params: this.negotiator.finish(),
      cmdSN: first.cmdSN,
      authentication: this.chap === null ? 'none' : this.chap.mutual ? 'mutual-chap' : 'chap',
    };
    const alias = this.negotiator.declared.get('InitiatorAlias');
    if (alias !== undefined) outcome.initiatorAlias = alias;
    const session = await this.ctx.establish(outcome);
    const reply = this.reply(pdu, true, csg, next, data, false, session.tsih);
    reply.done = { ok: true, outcome, session };
    return reply;
  }

  /** First key batch: who is logging in, to what (§6.3: InitiatorName, SessionType, TargetName). */
  private identify(pairs: TextPairs): void {
    const get = (k: string): string | undefined => pairs.find(([key]) => key === k)?.[1];
    const name = get('InitiatorName');
    if (name === undefined || name === '') throw new LoginFailure(LoginStatus.MissingParameter, 'InitiatorName missing');
    checkNameLength('InitiatorName', name);
    this.initiatorName = name;
    const type = get('SessionType') ?? 'Normal';
    if (type !== 'Normal' && type !== 'Discovery') throw new LoginFailure(LoginStatus.SessionTypeNotSupported, `SessionType ${type}`);
    this.sessionType = type;
    this.negotiator.setDiscovery(type === 'Discovery');
    if (type === 'Discovery') {
      this.setPolicy(this.ctx.auth?.forDiscovery() ?? { kind: 'none' }, 'discovery');
      this.checkTsih();
      return;
    }
    const targetName = get('TargetName');
    if (targetName === undefined || targetName === '') throw new LoginFailure(LoginStatus.MissingParameter, 'TargetName missing');
    checkNameLength('TargetName', targetName);
    const target = this.ctx.findTarget(targetName);
    if (target === undefined) throw new LoginFailure(LoginStatus.NotFound, `target ${targetName} not found`);
    this.target = target;
    const entry = target.aclEntry(name);
    if (entry === undefined) throw new LoginFailure(LoginStatus.AuthorizationFailure, `initiator not in the ACL of ${target.iqn}`);
    this.acl = entry;
    this.setPolicy(
      this.ctx.auth?.forAcl(entry) ?? (entry.chap !== undefined ? { kind: 'unavailable' } : { kind: 'none' }),
      `ACL entry ${JSON.stringify(entry.initiator)} of ${target.iqn}`,
    );
    this.checkTsih();
  }

  private setPolicy(policy: AuthPolicy, what: string): void {
    // Fail closed: CHAP configured but its secret not loaded (should not happen: the server reads them at start/reload).
    if (policy.kind === 'unavailable') throw new LoginFailure(LoginStatus.TargetError, `CHAP secret of the ${what} is not loaded`);
    this.policy = policy;
  }

  /** §6.3, §11.12 (TSIH): a non-zero TSIH names the session this connection joins; it must exist. */
  private checkTsih(): void {
    const f = this.first!;
    if (f.tsih !== 0) this.ctx.checkExistingSession(f.tsih, f.cid, this.initiatorName, f.isidHex, this.target);
  }

  private authRequired(): boolean {
    return this.policy.kind === 'chap';
  }

  /**
   * Security stage (§6.3.1, §12): AuthMethod negotiation, then the CHAP exchange (§12.1.3) when
   * the ACL entry (or discovery.chap) asks for CHAP. Every CHAP key must arrive at its step, once.
   */
  private security(pairs: TextPairs): TextPairs {
    const keys = new Map<string, string>();
    for (const [k, v] of pairs) {
      if (!SECURITY_KEYS.has(k)) continue;
      if (keys.has(k)) throw new LoginFailure(LoginStatus.InitiatorError, `${k} sent twice`);
      keys.set(k, v);
    }
    const out: TextPairs = [];
    const offered = keys.get('AuthMethod');
    if (offered !== undefined) {
      if (this.authMethod !== null) throw new LoginFailure(LoginStatus.InitiatorError, 'AuthMethod negotiated twice');
      const methods = offered.split(',');
      const shown = offered.length > 60 ? `${offered.slice(0, 60)}…` : offered;
      if (this.policy.kind === 'chap') {
        if (!methods.includes('CHAP')) {
          throw new LoginFailure(LoginStatus.AuthenticationFailure, `CHAP required, but the initiator offered only AuthMethod=${shown}`);
        }
        this.authMethod = 'CHAP';
        this.chap = new ChapExchange(this.policy.creds);
        out.push(['AuthMethod', 'CHAP']);
      } else if (methods.includes('None')) {
        this.authMethod = 'None';
        out.push(['AuthMethod', 'None']);
      } else {
        throw new LoginFailure(
          LoginStatus.AuthenticationFailure,
          `no CHAP credentials are configured for this initiator, and it does not accept AuthMethod=None (offered ${shown})`,
        );
      }
    }
    const chapKeys: ChapKeys = {};
    for (const k of ['CHAP_A', 'CHAP_I', 'CHAP_C', 'CHAP_N', 'CHAP_R'] as const) {
      const v = keys.get(k);
      if (v !== undefined) chapKeys[k] = v;
    }
    const chapSent = Object.keys(chapKeys);
    const chap = this.chap;
    if (chap === null) {
      if (chapSent.length > 0) throw new LoginFailure(LoginStatus.AuthenticationFailure, `${chapSent.join(', ')} without AuthMethod=CHAP`);
      if (this.policy.kind === 'chap') {
        throw new LoginFailure(LoginStatus.AuthenticationFailure, 'CHAP required, but the initiator did not offer AuthMethod');
      }
      this.authenticated = true;
      return out;
    }
    const only = (allowed: string[], step: string): void => {
      const extra = chapSent.filter((k) => !allowed.includes(k));
      if (extra.length > 0) throw new LoginFailure(LoginStatus.AuthenticationFailure, `${extra.join(', ')} unexpected ${step}`);
    };
    switch (chap.state) {
      case 'algorithm':
        if (chapKeys.CHAP_A === undefined) {
          // The PDU that selected CHAP may stop there; the next one must bring CHAP_A.
          if (offered !== undefined) {
            only([], 'before CHAP_A');
            return out;
          }
          throw new LoginFailure(LoginStatus.AuthenticationFailure, 'CHAP_A missing after AuthMethod=CHAP');
        }
        only(['CHAP_A'], 'with CHAP_A');
        out.push(...chap.selectAlgorithm(chapKeys.CHAP_A));
        return out;
      case 'response':
        try {
          out.push(...chap.verify(chapKeys));
        } catch (err) {
          this.chapResponseFailed = true;
          throw err;
        }
        this.authenticated = true;
        return out;
      case 'done':
        only([], 'after authentication');
        return out;
    }
  }

  private reply(pdu: Pdu, transit: boolean, csg: number, nsg: number, data?: Buffer, cont = false, tsih = 0): LoginReply {
    const header = loginResponseHeader({
      transit, cont, csg, nsg, isid: this.first!.isid, tsih, itt: pdu.itt, statusClass: 0, statusDetail: 0,
    });
    const reply: LoginReply = { header, ...this.window() };
    if (data !== undefined && data.length > 0) reply.data = data;
    return reply;
  }

  private failureReply(pdu: Pdu, failure: LoginFailure): LoginReply {
    const [statusClass, statusDetail] = failure.status;
    const isid = this.first?.isid ?? Buffer.from(pdu.bhs.subarray(8, 14));
    const header = loginResponseHeader({
      transit: false, cont: false, csg: pdu.loginCsg & 1, nsg: 0, isid, tsih: 0, itt: pdu.itt, statusClass, statusDetail,
    });
    return { header, ...this.window(pdu.cmdSN), done: { ok: false, failure } };
  }

  private window(cmdSN = this.first!.cmdSN): { expCmdSN: number; maxCmdSN: number } {
    return { expCmdSN: cmdSN, maxCmdSN: (cmdSN + this.ctx.settings.cmdWindow - 1) >>> 0 };
  }
}

/** §4.2.7.1: a name longer than an iSCSI name can be is the initiator's error (0x0200); the log line gives its length, not the name. */
function checkNameLength(key: 'InitiatorName' | 'TargetName', value: string): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_ISCSI_NAME_BYTES) {
    throw new LoginFailure(LoginStatus.InitiatorError, `${key} of ${bytes} bytes is longer than an iSCSI name may be (${MAX_ISCSI_NAME_BYTES} bytes, RFC 7143 §4.2.7.1)`);
  }
}
