/** Login response Status-Class / Status-Detail, RFC 7143 §11.13.5. */
export const LoginStatus = {
  Success: [0x00, 0x00],
  InitiatorError: [0x02, 0x00],
  AuthenticationFailure: [0x02, 0x01],
  AuthorizationFailure: [0x02, 0x02],
  NotFound: [0x02, 0x03],
  TargetRemoved: [0x02, 0x04],
  UnsupportedVersion: [0x02, 0x05],
  TooManyConnections: [0x02, 0x06],
  MissingParameter: [0x02, 0x07],
  CannotIncludeInSession: [0x02, 0x08],
  SessionTypeNotSupported: [0x02, 0x09],
  SessionDoesNotExist: [0x02, 0x0a],
  InvalidDuringLogin: [0x02, 0x0b],
  TargetError: [0x03, 0x00],
  ServiceUnavailable: [0x03, 0x01],
  OutOfResources: [0x03, 0x02],
} as const satisfies Record<string, readonly [number, number]>;

export type LoginStatusCode = (typeof LoginStatus)[keyof typeof LoginStatus];

/** A login status as a short name for counters: "authorization-failure", "not-found", … (RFC 7143 §11.13.5's names). */
export function loginStatusName(status: LoginStatusCode): string {
  const key = Object.entries(LoginStatus).find(([, code]) => code === status)?.[0] ?? 'Unknown';
  return key.replace(/(?<=[a-z0-9])(?=[A-Z])/g, '-').toLowerCase();
}

/** A login that must end with a non-success status. */
export class LoginFailure extends Error {
  constructor(
    readonly status: LoginStatusCode,
    message: string,
  ) {
    super(message);
  }
}
