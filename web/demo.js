// Helpers shared by the demo pages: the server to talk to, the connection
// badge in the header, player colours and the event log.
import { Client } from "/gameserver.js";

const params = new URLSearchParams(location.search);

/**
 * A client for this page: the page's own server, or the one named by
 * ?server=ws://host:port/ws, over the transport named by
 * ?transport=websocket|sse (default auto: WebSocket, else the HTTP
 * fallback). Options are those of the Client.
 */
export function createClient(options = {}) {
  const transport = params.get("transport");
  return new Client(params.get("server") ?? undefined, { pingInterval: 2000, ...(transport ? { transport } : {}), ...options });
}

/** A query parameter of the page. */
export function param(name) {
  return params.get(name);
}

/** Keeps the header's status pill and RTT in step with the client. */
export function bindStatus(client, { pill, rtt, transport, node } = {}) {
  const label = { idle: "offline", connecting: "connecting", open: "connected", reconnecting: "reconnecting", closed: "closed" };
  const show = (state) => {
    if (!pill) return;
    const failed = state === "idle" && client.lastError;
    pill.dataset.state = failed ? "error" : state;
    pill.textContent = failed ? "disconnected" : label[state];
    if (transport) transport.textContent = state === "open" ? client.transport : "–";
    if (node) node.textContent = client.session?.node ?? "–";
  };
  client.on("state", show);
  show(client.state);
  if (rtt) client.on("rtt", (ms) => (rtt.textContent = formatMs(ms)));
}

export function formatMs(ms) {
  if (ms === undefined) return "–";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** A stable, pleasant colour for a player ID. */
export function colorFor(id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return `hsl(${(h >>> 0) % 360} 80% 62%)`;
}

/** An event log: a list element that keeps the latest entries on top. */
export function createLog(ul, max = 60) {
  const entries = [];
  return {
    entries,
    add(text, kind = "") {
      const t = new Date().toLocaleTimeString([], { hour12: false });
      entries.push({ t: Date.now(), text, kind });
      if (!ul) return;
      const li = document.createElement("li");
      li.textContent = `${t}  ${text}`;
      if (kind) li.className = kind;
      ul.prepend(li);
      while (ul.children.length > max) ul.lastChild.remove();
    },
  };
}

/** Logs the connection and room life cycle of a client. */
export function logLifecycle(client, log) {
  client.on("open", (s) => log.add(`session ${s.sessionId.slice(0, 8)}… on node ${s.node}`, "good"));
  client.on("reconnecting", (e) => log.add(`connection lost (${e.closeCode}${e.reason ? " " + e.reason : ""}); retry ${e.attempt} in ${Math.round(e.delay)} ms`, "warn"));
  client.on("move", (m) => log.add(`the server moves this session: reconnecting in ${Math.round(m.delay)} ms`, "warn"));
  client.on("reconnected", (s) => log.add(s.resumed ? `reconnected over ${client.transport}: session resumed` : `reconnected over ${client.transport}: new session`, "good"));
  client.on("disconnected", (e) => log.add(`disconnected (${e.closeCode})${e.error ? ": " + e.error.message : ""}`, "bad"));
  client.on("error", (e) => log.add(`error ${e.code} ${e.codeName}: ${e.message}`, "bad"));
}
