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
