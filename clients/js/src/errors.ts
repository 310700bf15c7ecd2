// Typed errors. Every failure the client reports, whether it rejects a
// promise or is emitted as an "error" event, is a GameserverError.

/**
 * Error codes. Codes 400–599 are the server's (docs/protocol.md, "Error
 * codes"), codes from 1000 up are game-defined, and negative codes are
 * raised by the client itself and never travel on the wire.
 */
export const ErrorCode = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  RoomNotFound: 404,
  UnknownType: 405,
  NotInRoom: 406,
  HelloTimeout: 408,
  AlreadyInRoom: 409,
  RoomFull: 410,
  RoomLocked: 411,
  ResumeFailed: 412,
  TooLarge: 413,
  InvalidOptions: 422,
  UnsupportedVersion: 426,
  HelloRequired: 428,
  RateLimited: 429,
  Internal: 500,
  Unavailable: 503,

  /** The connection could not be opened or closed before the session started. */
  ConnectFailed: -1,
  /** No WELCOME within the connect timeout (5 s by default). */
  ConnectTimeout: -2,
  /** The connection was lost while a request waited for its answer. */
  ConnectionLost: -3,
  /** A request got no answer within the request timeout. */
  RequestTimeout: -4,
  /** The client was closed with client.close(). */
  ClientClosed: -5,
  /** The server sent a message this client cannot decode. */
  BadServerMessage: -6,
  /** The server closed the connection with a code that forbids reconnecting. */
  ClosedTerminal: -7,
  /** Automatic reconnection gave up after maxRetries attempts. */
  ReconnectFailed: -8,
  /** The room could not be re-joined after a reconnect. */
  RejoinFailed: -9,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

const codeNames: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "room_not_found",
  405: "unknown_type",
  406: "not_in_room",
  408: "hello_timeout",
  409: "already_in_room",
  410: "room_full",
  411: "room_locked",
  412: "resume_failed",
  413: "too_large",
  422: "invalid_options",
  426: "unsupported_version",
  428: "hello_required",
  429: "rate_limited",
  500: "internal",
  503: "unavailable",
  [-1]: "connect_failed",
  [-2]: "connect_timeout",
  [-3]: "connection_lost",
  [-4]: "request_timeout",
  [-5]: "client_closed",
  [-6]: "bad_server_message",
  [-7]: "closed_terminal",
  [-8]: "reconnect_failed",
  [-9]: "rejoin_failed",
};

/** The name of an error code ("room_not_found"), "game_error" from 1000 up. */
export function errorCodeName(code: number): string {
  return codeNames[code] ?? (code >= 1000 ? "game_error" : "unknown");
}

/** WebSocket close codes the server uses (docs/protocol.md, "WebSocket close codes"). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** No close frame was received: the connection dropped (set by the browser). */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  HeartbeatTimeout: 4000,
  SlowConsumer: 4001,
  Draining: 4002,
  HelloTimeout: 4003,
  Unauthorized: 4500,
  UnsupportedVersion: 4501,
  Kicked: 4502,
} as const;

/** How the client reacts to a close code. */
export type CloseAction = "none" | "reconnect" | "drain" | "terminal";

/**
 * The client's reaction to a close code: 4500–4999, 1009 and the "fix the
 * client" codes 1002, 1003 and 1007 are terminal; 4002 reconnects after a
 * jittered delay; 1000 ends the session without reconnecting; everything
 * else (4000–4499, 1001, 1006, 1008, 1011, ...) reconnects with backoff.
 */
export function closeAction(code: number): CloseAction {
  if (code >= 4500 && code <= 4999) return "terminal";
  switch (code) {
    case CloseCode.ProtocolError:
    case CloseCode.UnsupportedData:
    case CloseCode.InvalidPayload:
    case CloseCode.MessageTooBig:
      return "terminal";
    case CloseCode.Normal:
      return "none";
    case CloseCode.Draining:
      return "drain";
  }
  return "reconnect";
}

/** The error code that best describes a terminal close code. */
export function closeCodeError(code: number): number {
  switch (code) {
    case CloseCode.Unauthorized:
      return ErrorCode.Unauthorized;
    case CloseCode.UnsupportedVersion:
      return ErrorCode.UnsupportedVersion;
    case CloseCode.Kicked:
      return ErrorCode.Forbidden;
    case CloseCode.MessageTooBig:
      return ErrorCode.TooLarge;
    case CloseCode.ProtocolError:
    case CloseCode.UnsupportedData:
    case CloseCode.InvalidPayload:
      return ErrorCode.BadRequest;
  }
  return ErrorCode.ClosedTerminal;
}

export interface GameserverErrorDetails {
  /** The WebSocket close code, when the error comes from a close. */
  closeCode?: number;
  /** The type of the message that caused the error (ERROR's ref). */
  ref?: number;
  /** The request the error answers (ERROR's reqID). */
  reqID?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failure reported by the server or detected by the client. `code` is one
 * of ErrorCode (server codes 400–599, game codes ≥ 1000, client codes < 0);
 * `closeCode` is set when the error comes from a WebSocket close.
 */
export class GameserverError extends Error {
  override readonly name = "GameserverError";
  readonly code: number;
  readonly closeCode: number | undefined;
  readonly ref: number | undefined;
  readonly reqID: number | undefined;

  constructor(code: number, message: string, details: GameserverErrorDetails = {}) {
    super(message);
    this.code = code;
    this.closeCode = details.closeCode;
    this.ref = details.ref;
    this.reqID = details.reqID;
    if (details.cause !== undefined) (this as { cause?: unknown }).cause = details.cause;
  }

  /** The code's name, e.g. "room_not_found". */
  get codeName(): string {
    return errorCodeName(this.code);
  }
}
