import { RejectReason, RESERVED_TAG } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { textResponseHeader } from '../pdu/target-pdus.js';
import { decodeText, encodeText, TextFormatError, type TextPairs } from '../pdu/text.js';
import type { SessionPort } from './session-port.js';
import type { TargetNode } from './target-node.js';
import { TextGatherer } from './text-gather.js';

/** What SendTargets may reveal to this session's initiator. */
export interface TargetDirectory {
  /** Targets the initiator may log into, in configuration order. */
  visibleTargets(): TargetNode[];
  /** TargetAddress values as seen from this connection (RFC 7143 §13.8). */
  targetAddresses(): string[];
}

/**
 * Text Request/Response in full feature phase (RFC 7143 §11.10–11.11): SendTargets
 * (Appendix C) in discovery and normal sessions; other keys are answered NotUnderstood /
 * Reject. Requests spanning several PDUs (C bit) are gathered up to 64 KiB, each part after the
 * first carrying the TTT we returned; responses longer than the initiator's
 * MaxRecvDataSegmentLength are split and continued on its empty Text Requests.
 */
export class TextExchange {
  /** The request being gathered from C-bit PDUs: its ITT and the TTT we gave for its next part. */
  private gathering: { itt: number; ttt: number } | null = null;
  private readonly requestText = new TextGatherer();
  private pending: { itt: number; ttt: number; rest: Buffer } | null = null;

  constructor(
    private readonly port: SessionPort,
    private readonly directory: TargetDirectory,
  ) {}

  onTextRequest(pdu: Pdu): void {
    const ttt = pdu.targetTransferTag;
    if (ttt !== RESERVED_TAG) {
      // §11.10.4: a TTT we returned continues the request (C bit) or our long response.
      if (this.gathering !== null && this.gathering.ttt === ttt && this.gathering.itt === pdu.itt) {
        this.gather(pdu);
        return;
      }
      if (this.pending === null || this.pending.ttt !== ttt || this.pending.itt !== pdu.itt) {
        this.port.reject(RejectReason.InvalidPduField, pdu.bhs, 'Text Request with unknown Target Transfer Tag');
        return;
      }
      const { rest } = this.pending;
      this.pending = null;
      this.sendPart(pdu, rest);
      return;
    }
    // §11.10.4: TTT 0xffffffff starts a new request, abandoning anything unfinished.
    this.pending = null;
    this.requestText.clear();
    this.gathering = { itt: pdu.itt, ttt: RESERVED_TAG };
    this.gather(pdu);
  }

  private gather(pdu: Pdu): void {
    const port = this.port;
    if (!this.requestText.add(pdu.data)) {
      this.gathering = null;
      // §11.17.1 reason 0x0a (long operation reject: cannot generate a Target Transfer Tag, out of
      // resources): we hand out no TTT to continue a request past the §6.1 bound; it is dropped.
      port.reject(RejectReason.OutOfResources, pdu.bhs, `Text Request longer than ${this.requestText.limit} bytes; request dropped`);
      return;
    }
    if (pdu.textContinue) {
      // §11.11: an empty response with a TTT the initiator echoes in the request's next PDU.
      const ttt = port.allocateTtt();
      this.gathering = { itt: pdu.itt, ttt };
      port.send(textResponseHeader(pdu.itt, ttt, false, false, pdu.lunField), undefined, true);
      return;
    }
    this.gathering = null;
    const text = this.requestText.take();
    let pairs: TextPairs;
    try {
      pairs = decodeText(text);
    } catch (err) {
      port.reject(RejectReason.ProtocolError, pdu.bhs, err instanceof TextFormatError ? err.message : String(err));
      return;
    }
    const answer: TextPairs = [];
    for (const [key, value] of pairs) {
      if (key === 'SendTargets') answer.push(...this.sendTargets(value));
      else answer.push([key, 'NotUnderstood']);
    }
    this.sendPart(pdu, encodeText(answer));
  }

  private sendPart(pdu: Pdu, payload: Buffer): void {
    const port = this.port;
    const max = port.session.params.initiatorMaxRecvDataSegmentLength;
    if (payload.length <= max) {
      port.send(textResponseHeader(pdu.itt, RESERVED_TAG, true, false, pdu.lunField), payload, true);
      return;
    }
    const ttt = port.allocateTtt();
    this.pending = { itt: pdu.itt, ttt, rest: payload.subarray(max) };
    port.send(textResponseHeader(pdu.itt, ttt, false, true, pdu.lunField), payload.subarray(0, max), true);
  }

  /** RFC 7143 Appendix C: "All" in discovery sessions, a target name, or empty (this session's target). */
  private sendTargets(value: string): TextPairs {
    const port = this.port;
    const session = port.session;
    const visible = this.directory.visibleTargets();
    let chosen;
    if (value === 'All') {
      if (session.type !== 'Discovery') return [['SendTargets', 'Reject']];
      chosen = visible;
    } else if (value === '') {
      chosen = session.target === null ? [] : visible.filter((t) => t === session.target);
    } else {
      chosen = visible.filter((t) => t.iqn === value.toLowerCase()); // names compare lower-cased (RFC 7143 §4.2.7.1)
    }
    const addresses = this.directory.targetAddresses();
    const out: TextPairs = [];
    for (const t of chosen) {
      out.push(['TargetName', t.iqn]);
      for (const a of addresses) out.push(['TargetAddress', a]);
    }
    return out;
  }
}
