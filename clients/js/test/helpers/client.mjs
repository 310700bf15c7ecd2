// What the Node tests share: the client under test is the bundle the
// server serves (web/gameserver.js), so the tests cover what ships; it is
// checked against the sources by `npm run check-bundle`.
import { repoDir } from "./server.mjs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const gs = await import(pathToFileURL(join(repoDir, "web", "gameserver.js")).href);

/** The WebSocket implementation: the global one if Node has it, else the ws package. */
export const WebSocketImpl = globalThis.WebSocket ?? (await import("ws")).WebSocket;

/** A client with the WebSocket implementation and fast test defaults. */
export function newClient(url, options = {}) {
  return new gs.Client(url, { webSocket: WebSocketImpl, ...options });
}

/** Resolves with the next value of an emitter's event, or rejects after timeoutMs. */
export function nextEvent(emitter, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = emitter.on(event, (v) => {
      clearTimeout(t);
      off();
      resolve(v);
    });
  });
}

/** Records every event of a client and its room, for assertions. */
export function recorder(target, events) {
  const log = [];
  for (const e of events) target.on(e, (v) => log.push({ event: e, value: v, at: Date.now() }));
  return log;
}

/** Server messages outside the sequence (docs/protocol.md): WELCOME, PING, PONG, KICK, MOVE, RESUMED. */
const UNSEQUENCED = new Set([gs.MsgType.Welcome, gs.MsgType.Ping, gs.MsgType.Pong, gs.MsgType.Kick, gs.MsgType.Move, gs.MsgType.Resumed]);

/**
 * Wraps a TransportFactory (pass it as the client's transport option) to
 * record the wire: log lists every message both ways, in order, as
 * { dir: "in" | "out", msg, seqIn } with msg decoded (null if it cannot be)
 * and seqIn the sequenced server messages received up to then.
 */
export function wireRecorder(factory) {
  const log = [];
  let seqIn = 0;
  const decode = (data) => {
    try {
      return gs.decodeMessage(data);
    } catch {
      return null;
    }
  };
  const transport = (url, events) => {
    const t = factory(url, {
      open: () => events.open(),
      message(data) {
        if (data.length >= 2 && !UNSEQUENCED.has((data[0] << 8) | data[1])) seqIn++;
        log.push({ dir: "in", msg: decode(data), seqIn });
        events.message(data);
      },
      close: (code, reason) => events.close(code, reason),
    });
    return {
      name: t.name,
      send(data) {
        log.push({ dir: "out", msg: decode(data), seqIn });
        t.send(data);
      },
      close: (code, reason) => t.close(code, reason),
    };
  };
  return { transport, log };
}

/**
 * Checks the client's PONGs in a wireRecorder log: each answers a server
 * PING and acks at least every sequenced message received before that
 * PING, and at most what was received when it was sent. Returns the PONGs.
 */
export function checkPongAcks(log) {
  const { MsgType } = gs;
  const pongs = [];
  for (let i = 0; i < log.length; i++) {
    const e = log[i];
    if (e.dir !== "out" || e.msg?.type !== MsgType.Pong) continue;
    const ping = log.slice(0, i).findLast((p) => p.dir === "in" && p.msg?.type === MsgType.Ping && p.msg.nonce === e.msg.nonce);
    if (!ping) throw new Error(`PONG ${e.msg.nonce} answers no PING`);
    if (typeof e.msg.ack !== "bigint" || e.msg.ack < BigInt(ping.seqIn) || e.msg.ack > BigInt(e.seqIn)) {
      throw new Error(`PONG ${e.msg.nonce} acks ${e.msg.ack}: want ${ping.seqIn} (received before the PING) to ${e.seqIn} (received by the PONG)`);
    }
    pongs.push(e.msg);
  }
  return pongs;
}
