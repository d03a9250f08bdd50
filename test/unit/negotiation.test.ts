import { describe, expect, it } from 'vitest';
import { Negotiator, NegotiationError } from '../../src/iscsi/negotiation.js';
import type { IscsiSettings } from '../../src/config/types.js';

const settings: IscsiSettings = {
  cmdWindow: 128, maxRecvDataSegmentLength: 262144, maxBurstLength: 1048576, firstBurstLength: 262144,
  maxOutstandingR2T: 8, immediateData: true, initialR2T: false, headerDigest: ['None', 'CRC32C'], dataDigest: ['None', 'CRC32C'],
  loginTimeout: 15, nopInInterval: 10, nopInTimeout: 10, maxPendingLogins: 64, defaultTime2Wait: 2, defaultTime2Retain: 0,
};

const answer = (pairs: Array<[string, string]>, discovery = false) => new Map(new Negotiator(settings, discovery).respond(pairs));

describe('operational key negotiation (RFC 7143 §6.2, §13)', () => {
  it('takes the minimum for MaxBurstLength/FirstBurstLength/MaxOutstandingR2T and ERL', () => {
    const a = answer([['MaxBurstLength', '16776192'], ['FirstBurstLength', '65536'], ['MaxOutstandingR2T', '1'], ['ErrorRecoveryLevel', '2']]);
    expect(a.get('MaxBurstLength')).toBe('1048576');
    expect(a.get('FirstBurstLength')).toBe('65536');
    expect(a.get('MaxOutstandingR2T')).toBe('1');
    expect(a.get('ErrorRecoveryLevel')).toBe('0');
  });

  it('uses OR for InitialR2T and AND for ImmediateData', () => {
    expect(answer([['InitialR2T', 'Yes']]).get('InitialR2T')).toBe('Yes');
    expect(answer([['InitialR2T', 'No']]).get('InitialR2T')).toBe('No');
    expect(answer([['ImmediateData', 'No']]).get('ImmediateData')).toBe('No');
    expect(answer([['ImmediateData', 'Yes']]).get('ImmediateData')).toBe('Yes');
  });

  it('takes the maximum for DefaultTime2Wait', () => {
    expect(answer([['DefaultTime2Wait', '1']]).get('DefaultTime2Wait')).toBe('2');
    expect(answer([['DefaultTime2Wait', '5']]).get('DefaultTime2Wait')).toBe('5');
  });

  it('picks the first supported value of a digest list', () => {
    expect(answer([['HeaderDigest', 'CRC32C,None']]).get('HeaderDigest')).toBe('CRC32C');
    expect(answer([['DataDigest', 'None,CRC32C']]).get('DataDigest')).toBe('None');
    expect(answer([['HeaderDigest', 'MD5']]).get('HeaderDigest')).toBe('Reject');
  });

  it('records the initiator MaxRecvDataSegmentLength and declares ours', () => {
    const n = new Negotiator(settings, false);
    const a = new Map(n.respond([['MaxRecvDataSegmentLength', '8192']]));
    expect(a.get('MaxRecvDataSegmentLength')).toBe('262144');
    expect(n.params.initiatorMaxRecvDataSegmentLength).toBe(8192);
  });

  it('answers Reject to out-of-range or malformed values, NotUnderstood to unknown keys', () => {
    const a = answer([['MaxBurstLength', '100'], ['MaxRecvDataSegmentLength', '16777216'], ['ImmediateData', 'Maybe'], ['X-com.example.Foo', '1']]);
    expect(a.get('MaxBurstLength')).toBe('Reject');
    expect(a.get('MaxRecvDataSegmentLength')).toBe('Reject');
    expect(a.get('ImmediateData')).toBe('Reject');
    expect(a.get('X-com.example.Foo')).toBe('NotUnderstood');
  });

  it('answers Irrelevant to session keys in a discovery session', () => {
    const a = answer([['InitialR2T', 'No'], ['MaxBurstLength', '262144'], ['HeaderDigest', 'None']], true);
    expect(a.get('InitialR2T')).toBe('Irrelevant');
    expect(a.get('MaxBurstLength')).toBe('Irrelevant');
    expect(a.get('HeaderDigest')).toBe('None');
  });

  it('answers the obsolete marker keys as RFC 7143 §13.25 requires', () => {
    const a = answer([['IFMarker', 'No'], ['OFMarker', 'Yes'], ['OFMarkInt', '2048~8192']]);
    expect(a.get('IFMarker')).toBe('No');
    expect(a.get('OFMarker')).toBe('No');
    expect(a.get('OFMarkInt')).toBe('Reject');
  });

  it('refuses a key negotiated twice', () => {
    const n = new Negotiator(settings, false);
    n.respond([['MaxBurstLength', '65536']]);
    expect(() => n.respond([['MaxBurstLength', '65536']])).toThrow(NegotiationError);
  });

  it('keeps FirstBurstLength ≤ MaxBurstLength', () => {
    const n = new Negotiator(settings, false);
    n.respond([['MaxBurstLength', '65536'], ['FirstBurstLength', '262144']]);
    expect(n.finish().firstBurstLength).toBe(65536);
  });
});
