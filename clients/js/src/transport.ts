// Transports carry protocol messages, one binary message each way. The
// client talks to the Transport interface only: WebSocket (here) and the
// HTTP fallback (sse.ts) are built in, and another transport can be
// plugged in with the `transport` option.

/** What a transport reports to the client. */
export interface TransportEvents {
  /** The connection is open; send may be called. */
  open(): void;
  /** One complete protocol message arrived. */
  message(data: Uint8Array): void;
  /**
   * The connection ended, or could not be opened. Called exactly once,
   * and never after the client called close().
   */
  close(code: number, reason: string): void;
}

/** One connection to the server. */
export interface Transport {
  /** A short name shown to users, e.g. "websocket". */
  readonly name: string;
  /** Sends one protocol message. Only called between open and close. */
  send(data: Uint8Array): void;
  /**
   * Closes the connection. After this the transport reports nothing
   * more. code is 1000 or 3000–4999.
   */
  close(code: number, reason: string): void;
}

/** Opens a transport to url and reports to events. */
export type TransportFactory = (url: string, events: TransportEvents) => Transport;

/** The subset of the WHATWG WebSocket the client needs. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/**
 * A TransportFactory over WebSocket. ctor defaults to the global
 * WebSocket (browsers, Node 22+); in older Node pass the `ws` package's.
 */
export function webSocketTransport(ctor?: WebSocketConstructor): TransportFactory {
  return (url, events) => {
    const WS = ctor ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error("no WebSocket implementation: pass one with the webSocket option (in Node < 22, the ws package)");
    const ws = new WS(url);
    ws.binaryType = "arraybuffer";
    let done = false;
    // Handlers are replaced, never removed: an implementation such as the
    // ws package throws on an error event nobody listens to.
    const detach = () => {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
    };
    const finish = (code: number, reason: string) => {
      if (done) return;
      done = true;
      detach();
      events.close(code, reason);
    };
    ws.onopen = () => {
      if (!done) events.open();
    };
    ws.onmessage = (ev) => {
      if (done) return;
      const d = ev.data;
      if (d instanceof ArrayBuffer) events.message(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) events.message(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else events.message(new Uint8Array(0)); // a text frame: not a protocol message, reported as malformed
    };
    // An error is always followed by close, which carries the code.
    ws.onerror = () => {};
    ws.onclose = (ev) => finish(ev.code, ev.reason);
    return {
      name: "websocket",
      send(data) {
        ws.send(data);
      },
      close(code, reason) {
        if (done) return;
        done = true;
        detach();
        try {
          ws.close(code, reason);
        } catch {
          ws.close();
        }
      },
    };
  };
}
