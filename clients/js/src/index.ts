// gameserver client: rooms, messages, heartbeats, automatic reconnection
// with session resume, over WebSocket or the HTTP fallback (Server-Sent
// Events and POST), speaking the gameserver wire protocol (docs/protocol.md).

export { Client, VERSION, normalizeUrl } from "./client.js";
export type { ClientOptions, ClientEvents, ConnectionState, MoveEvent, ReconnectedInfo, RoomAvailable, SessionInfo, TransportName } from "./client.js";
export { Room } from "./room.js";
export type {
  DisconnectedEvent,
  LeaveEvent,
  LeaveReason,
  MessageHandler,
  MessageInfo,
  PresenceChange,
  ReconnectedEvent,
  ReconnectingEvent,
  RoomEvents,
  StateHandler,
  StateUpdate,
} from "./room.js";
export { CloseCode, ErrorCode, GameserverError, closeAction, errorCodeName } from "./errors.js";
export type { CloseAction, ErrorCodeValue, GameserverErrorDetails } from "./errors.js";
export { webSocketTransport } from "./transport.js";
export { sseAvailable, sseEndpoints, sseTransport } from "./sse.js";
export type { EventSourceConstructor, EventSourceLike, FetchLike, SseEndpoints, SseTransportOptions } from "./sse.js";
export type { Transport, TransportEvents, TransportFactory, WebSocketConstructor, WebSocketLike } from "./transport.js";
export { backoffDelay, drainDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export {
  FIRST_GAME_TYPE,
  JoinMode,
  LeftReason,
  Limits,
  MsgType,
  PROTOCOL_VERSION,
  PresenceEvent,
  decodeMessage,
  encodeMessage,
  isGameType,
  typeName,
} from "./protocol.js";
export type * from "./protocol.js";
export { decodeValue, encodeValue } from "./values.js";
export { ARENA_INPUT, decodeArenaInput, decodeArenaState, encodeArenaInput, encodeArenaState } from "./arena.js";
export type { ArenaInput, ArenaPlayer } from "./arena.js";
