// A small EventSource for Node (which has none before version 22), enough
// for the fallback transport: the WHATWG event stream format, `id`
// tracking, `retry`, named events, automatic reconnection with
// Last-Event-ID, and failure (readyState CLOSED) on a non-200 answer.
import { request } from "node:http";

export class NodeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  /** Every instance, for tests that look at the streams. */
  static instances = new Set();

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.lastEventId = "";
    this.reconnectMs = 1000;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.listeners = new Map();
    /** Connections made (1 + reconnections). */
    this.connects = 0;
    NodeEventSource.instances.add(this);
    this.#connect();
  }

  addEventListener(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
  }

  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  close() {
    this.readyState = 2;
    clearTimeout(this.timer);
    this.req?.destroy();
    NodeEventSource.instances.delete(this);
  }

  /** Drops the current stream as a network failure would (it reconnects). */
  cut() {
    this.req?.destroy();
  }

  #dispatch(type, ev) {
    const h = this["on" + type];
    if (typeof h === "function" && (type === "open" || type === "message" || type === "error")) h.call(this, ev);
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn.call(this, ev);
  }

  #connect() {
    this.connects++;
    const headers = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    let ended = false;
    const lost = () => {
      if (ended) return;
      ended = true;
      if (this.readyState === 2) return;
      this.readyState = 0;
      this.#dispatch("error", { type: "error" });
      if (this.readyState === 0) this.timer = setTimeout(() => this.readyState === 0 && this.#connect(), this.reconnectMs);
    };
    const req = request(this.url, { headers }, (res) => {
      if (this.readyState === 2) {
        res.destroy();
        return;
      }
      if (res.statusCode !== 200 || !/^text\/event-stream/.test(res.headers["content-type"] ?? "")) {
        ended = true;
        res.resume();
        this.readyState = 2;
        NodeEventSource.instances.delete(this);
        this.#dispatch("error", { type: "error", status: res.statusCode });
        return;
      }
      this.readyState = 1;
      this.#dispatch("open", { type: "open" });
      res.setEncoding("utf8");
      let buf = "";
      let data = [];
      let event = "";
      let id;
      res.on("data", (chunk) => {
        buf += chunk;
        for (;;) {
          const m = /\r\n|\r|\n/.exec(buf);
          if (!m) break;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === "") {
            if (id !== undefined) this.lastEventId = id;
            if (data.length > 0 && this.readyState === 1) {
              this.#dispatch(event || "message", { type: event || "message", data: data.join("\n"), lastEventId: this.lastEventId });
            }
            data = [];
            event = "";
            id = undefined;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "event") event = value;
          else if (field === "id") id = value;
          else if (field === "retry" && /^\d+$/.test(value)) this.reconnectMs = Number(value);
        }
      });
      res.on("end", lost);
      res.on("close", lost);
      res.on("error", lost);
    });
    req.on("error", lost);
    req.end();
    this.req = req;
  }
}
