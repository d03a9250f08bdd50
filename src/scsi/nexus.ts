/**
 * The I_T nexus (SAM-5 §4.8): the relationship between one SCSI initiator port and one SCSI
 * target port. The transport builds it once per session; the SCSI layer reads its parts and
 * never parses a string to recover them.
 */

/** A SCSI target port of this device as seen through one transport portal group. */
export interface TargetPort {
  /** SCSI target port name (SAM-5 §4.6.4); for iSCSI "<target name>,t,0x<TPGT>" (RFC 7143 §4.2.7.1). Lower case. */
  readonly name: string;
  /** RELATIVE TARGET PORT IDENTIFIER (SPC-4 §7.8.6.5): 1–65535, unique among this device's ports. */
  readonly relativeId: number;
  /** TARGET PORT GROUP the port belongs to (SPC-4 §5.15.2, §7.8.6.6). */
  readonly groupId: number;
}

export interface ItNexus {
  /**
   * Opaque key, equal for equal (initiator port, target port) pairs: for maps and equality only.
   * Nothing may be derived from its text.
   */
  readonly id: string;
  /** Initiator device name (the iSCSI InitiatorName). */
  readonly initiatorName: string;
  /** SCSI initiator port name (SAM-5 §4.6.4); for iSCSI "<initiator name>,i,0x<ISID>". Lower case. */
  readonly initiatorPort: string;
  /** TransportID of the initiator port (SPC-4 §7.6.4), as PERSISTENT RESERVE IN reports it. */
  readonly transportId: Buffer;
  readonly targetPort: TargetPort;
  /** Writes and shared-state changes through this nexus are refused (ACL readOnly). */
  readonly readOnly: boolean;
}

export interface ItNexusParts {
  readonly initiatorName: string;
  readonly initiatorPort: string;
  readonly transportId: Buffer;
  readonly targetPort: TargetPort;
  readonly readOnly: boolean;
}

export function createNexus(parts: ItNexusParts): ItNexus {
  const initiatorPort = parts.initiatorPort.toLowerCase();
  const targetPort = { ...parts.targetPort, name: parts.targetPort.name.toLowerCase() };
  return { ...parts, initiatorPort, targetPort, id: `${initiatorPort}\u0000${targetPort.name}` };
}
