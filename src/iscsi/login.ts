import type { AclEntry, IscsiSettings, PortalConfig } from '../config/types.js';
import { Opcode } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { loginResponseHeader } from '../pdu/target-pdus.js';
import { decodeText, encodeText, TextFormatError, type TextPairs } from '../pdu/text.js';
import { LoginFailure, LoginStatus } from './login-status.js';
import { Negotiator, NegotiationError, SECURITY_KEYS, type SessionParams } from './negotiation.js';
import type { SessionType } from './session.js';
import type { TargetNode } from './target-node.js';

/** Login stages (CSG/NSG), RFC 7143 §11.12.3. */
const enum Stage { Security = 0, Operational = 1, FullFeature = 3 }

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
}

export interface LoginContext {
  readonly settings: IscsiSettings;
  readonly portal: PortalConfig;
  findTarget(iqn: string): TargetNode | undefined;
  /** Create (or reinstate) the session; resolves its TSIH. May throw LoginFailure. */
  establish(outcome: LoginOutcome): Promise<number>;
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
  done?: { ok: true; outcome: LoginOutcome } | { ok: false; failure: LoginFailure };
}

/**
 * The login phase of one connection (RFC 7143 §6.3): security stage (authentication), then
 * operational negotiation, then the transition to full feature phase. Each Login Request
 * yields exactly one Login Response.
 */
export class LoginHandler {
  private first: { isid: Buffer; isidHex: string; tsih: number; cid: number; cmdSN: number } | null = null;
  private stage: Stage | null = null;
  private pendingText: Buffer[] = [];
  private negotiator: Negotiator;
  private sessionType: SessionType = 'Normal';
  private initiatorName = '';
  private target: TargetNode | null = null;
  private acl: AclEntry | null = null;
  private authenticated = false;
  private sentTpgt = false;

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
      const failure =
        err instanceof LoginFailure ? err
        : err instanceof TextFormatError || err instanceof NegotiationError ? new LoginFailure(LoginStatus.InitiatorError, err.message)
        : new LoginFailure(LoginStatus.TargetError, err instanceof Error ? err.message : String(err));
      return this.failureReply(pdu, failure);
    }
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
    const csg = pdu.loginCsg as Stage;
    const transit = pdu.loginTransit;
    const nsg = pdu.loginNsg as Stage;
    // §11.12.3: stage rules.
    if (csg !== Stage.Security && csg !== Stage.Operational) throw new LoginFailure(LoginStatus.InitiatorError, `invalid CSG ${csg}`);
    if (this.stage !== null && csg !== this.stage) throw new LoginFailure(LoginStatus.InitiatorError, `CSG ${csg} does not continue stage ${this.stage}`);
    if (transit && pdu.loginContinue) throw new LoginFailure(LoginStatus.InitiatorError, 'T and C bits both set');
    if (transit && (nsg <= csg || (nsg as number) === 2)) throw new LoginFailure(LoginStatus.InitiatorError, `invalid transition ${csg}→${nsg}`);
    this.stage = csg;

    // §11.12.? / §6.1: text may span PDUs (C bit); answer each partial PDU with an empty response.
    this.pendingText.push(pdu.data);
    if (pdu.loginContinue) return this.reply(pdu, false, csg, csg, undefined);
    const text = Buffer.concat(this.pendingText);
    this.pendingText = [];
    const pairs = decodeText(text);

    if (this.initiatorName === '') this.identify(pairs);
    const answer: TextPairs = [];
    if (csg === Stage.Security) {
      answer.push(...this.security(pairs));
    } else {
      for (const [k] of pairs) {
        if (SECURITY_KEYS.has(k)) throw new LoginFailure(LoginStatus.InitiatorError, `security key ${k} in operational stage`);
      }
      if (!this.authenticated && this.authRequired()) {
        throw new LoginFailure(LoginStatus.AuthenticationFailure, 'authentication required but security stage skipped');
      }
    }
    answer.push(...this.negotiator.respond(pairs));
    if (this.sessionType === 'Normal' && !this.sentTpgt) {
      // §13.9: the target declares its portal group tag in the first response of a normal session.
      answer.push(['TargetPortalGroupTag', String(this.ctx.portal.tpgt)]);
      if (this.target?.definition.alias !== undefined) answer.push(['TargetAlias', this.target.definition.alias]);
      this.sentTpgt = true;
    }
    if (!transit) return this.reply(pdu, false, csg, csg, answer);
    if (csg === Stage.Security && !this.authenticated) {
      // Authentication not yet complete: stay in the security stage.
      return this.reply(pdu, false, csg, csg, answer);
    }
    this.stage = nsg;
    if (nsg !== Stage.FullFeature) return this.reply(pdu, true, csg, nsg, answer);

    answer.push(...this.negotiator.finalDeclarations());
    const outcome: LoginOutcome = {
      type: this.sessionType,
      initiatorName: this.initiatorName,
      isid: this.first.isidHex,
      requestedTsih: this.first.tsih,
      cid: this.first.cid,
      target: this.target,
      acl: this.acl,
      params: this.negotiator.finish(),
      cmdSN: this.first.cmdSN,
    };
    const alias = this.negotiator.declared.get('InitiatorAlias');
    if (alias !== undefined) outcome.initiatorAlias = alias;
    const tsih = await this.ctx.establish(outcome);
    const reply = this.reply(pdu, true, csg, nsg, answer, tsih);
    reply.done = { ok: true, outcome };
    return reply;
  }

  /** First key batch: who is logging in, to what (§6.3: InitiatorName, SessionType, TargetName). */
  private identify(pairs: TextPairs): void {
    const get = (k: string): string | undefined => pairs.find(([key]) => key === k)?.[1];
    const name = get('InitiatorName');
    if (name === undefined || name === '') throw new LoginFailure(LoginStatus.MissingParameter, 'InitiatorName missing');
    this.initiatorName = name;
    const type = get('SessionType') ?? 'Normal';
    if (type !== 'Normal' && type !== 'Discovery') throw new LoginFailure(LoginStatus.SessionTypeNotSupported, `SessionType ${type}`);
    this.sessionType = type;
    this.negotiator.setDiscovery(type === 'Discovery');
    if (type === 'Discovery') {
      this.checkTsih();
      return;
    }
    const targetName = get('TargetName');
    if (targetName === undefined || targetName === '') throw new LoginFailure(LoginStatus.MissingParameter, 'TargetName missing');
    const target = this.ctx.findTarget(targetName);
    if (target === undefined) throw new LoginFailure(LoginStatus.NotFound, `target ${targetName} not found`);
    this.target = target;
    const entry = target.aclEntry(name);
    if (entry === undefined) throw new LoginFailure(LoginStatus.AuthorizationFailure, `initiator not in the ACL of ${target.iqn}`);
    this.acl = entry;
    this.checkTsih();
  }

  /** §6.3 / §11.12.? a non-zero TSIH names the session this connection joins: it must exist. */
  private checkTsih(): void {
    const f = this.first!;
    if (f.tsih !== 0) this.ctx.checkExistingSession(f.tsih, f.cid, this.initiatorName, f.isidHex, this.target);
  }

  private authRequired(): boolean {
    return false;
  }

  /** Security stage (§6.3.1, §12): AuthMethod negotiation. */
  private security(pairs: TextPairs): TextPairs {
    const out: TextPairs = [];
    const offered = pairs.find(([k]) => k === 'AuthMethod')?.[1];
    if (offered !== undefined) {
      const methods = offered.split(',');
      if (!methods.includes('None')) {
        throw new LoginFailure(LoginStatus.AuthenticationFailure, `no supported AuthMethod in ${offered}`);
      }
      out.push(['AuthMethod', 'None']);
    }
    if (!this.authRequired()) this.authenticated = true;
    return out;
  }

  private reply(pdu: Pdu, transit: boolean, csg: number, nsg: number, pairs: TextPairs | undefined, tsih = 0): LoginReply {
    const header = loginResponseHeader({
      transit, cont: false, csg, nsg, isid: this.first!.isid, tsih, itt: pdu.itt, statusClass: 0, statusDetail: 0,
    });
    const reply: LoginReply = { header, ...this.window() };
    if (pairs !== undefined && pairs.length > 0) reply.data = encodeText(pairs);
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
