// A scripted stand-in for the server, for what a real server cannot be
// made to do on demand: close with a chosen code, go silent, send
// malformed bytes. It speaks the real protocol over real WebSockets (the
// ws package) on a loopback port.
import { WebSocketServer } from "ws";
import { once } from "node:events";
import { gs } from "./client.mjs";

const { MsgType } = gs;

export class FakeConn {
  constructor(ws, index, url = "") {
    this.ws = ws;
    this.index = index;
    /** The upgrade request's path and query, e.g. "/ws?session=s-1". */
    this.url = url;
    this.received = [];
    this.waiters = [];
    this.autoPong = true;
    this.closed = new Promise((r) => ws.once("close", (code, reason) => r({ code, reason: reason.toString() })));
    ws.on("message", (data, isBinary) => {
      if (!isBinary) throw new Error("the client sent a text frame");
      const m = gs.decodeMessage(new Uint8Array(data));
      m.at = Date.now();
      this.received.push(m);
      if (m.type === MsgType.Ping && this.autoPong) this.send({ type: MsgType.Pong, nonce: m.nonce, ack: 0n }); // acks nothing: scripts ack explicitly
      for (const w of [...this.waiters]) w(m);
    });
  }

  send(m) {
    this.ws.send(gs.encodeMessage(m));
  }

  sendRaw(bytes) {
    this.ws.send(bytes);
  }

  close(code, reason = "") {
    this.ws.close(code, reason);
  }

  /** The next message of this type (already received ones first). */
  next(type, timeoutMs = 5000) {
    const seen = this.received.find((m) => m.type === type && !m.taken);
    if (seen) {
      seen.taken = true;
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`fake server: no message of type ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (m) => {
        if (m.type !== type || m.taken) return;
        m.taken = true;
        clearTimeout(t);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(m);
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Waits for HELLO and answers WELCOME; resumeToken (default none) offers
   * resuming the session.
   */
  async handshake({ pingIntervalMs = 10000, pingTimeoutMs = 10000, sessionID = `s-${this.index}`, resumeToken = null } = {}) {
    const hello = await this.next(MsgType.Hello);
    this.send({ type: MsgType.Welcome, version: 1, sessionID, node: "fake", pingIntervalMs, pingTimeoutMs, maxMessage: 65536, resumeToken });
    return hello;
  }

  /** The next HELLO or RESUME (the first message of a connection). */
  first(timeoutMs = 5000) {
    return this.nextOf([MsgType.Hello, MsgType.Resume], timeoutMs);
  }

  /** The next message of one of these types. */
  nextOf(types, timeoutMs = 5000) {
    const seen = this.received.find((m) => types.includes(m.type) && !m.taken);
    if (seen) {
      seen.taken = true;
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`fake server: no message of types ${types} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (m) => {
        if (!types.includes(m.type) || m.taken) return;
        m.taken = true;
        clearTimeout(t);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(m);
      };
      this.waiters.push(waiter);
    });
  }

  /** Waits for a JOIN and answers JOINED. */
  async acceptJoin({ roomID = "r-1", kind, playerID = `p-${this.index}`, tickRate = 20 } = {}) {
    const join = await this.next(MsgType.Join);
    this.send({ type: MsgType.Joined, reqID: join.reqID, roomID, kind: kind ?? (join.kind || "arena"), playerID, tickRate });
    return join;
  }
}

/**
 * Starts a fake server; script(conn) runs for every connection. Returns
 * { url, conns, close }.
 */
export async function fakeServer(script) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  const conns = [];
  wss.on("connection", (ws, req) => {
    const c = new FakeConn(ws, conns.length + 1, req.url);
    conns.push(c);
    Promise.resolve(script(c)).catch((e) => {
      c.error = e;
    });
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/ws`,
    conns,
    async close() {
      for (const c of conns) c.ws.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}
