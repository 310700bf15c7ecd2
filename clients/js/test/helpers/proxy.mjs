// Proxies between the client under test and a real server, to break the
// network on demand: a TCP proxy whose connections can be cut (both
// sockets destroyed, as a dropped network does), and an HTTP proxy for
// the fallback whose requests and responses a test can drop or refuse.
import { createServer as createTcpServer, connect } from "node:net";
import { createServer as createHttpServer, request } from "node:http";

/** A TCP proxy on a free loopback port to 127.0.0.1:targetPort. */
export async function tcpProxy(targetPort) {
  const pairs = new Set();
  let accepted = 0;
  let refusing = false;
  const srv = createTcpServer((client) => {
    accepted++;
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const port = srv.address().port;
  return {
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    /** Connections accepted so far. */
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    /** Cuts every connection: both ends see the socket drop, no close frame. */
    cut() {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    /** While on, new connections are dropped at once. */
    refuse(on) {
      refusing = on;
    },
    async close() {
      this.cut();
      await new Promise((r) => srv.close(r));
    },
  };
}

/**
 * An HTTP proxy to 127.0.0.1:targetPort. hook({ method, path, headers,
 * body }) may return { dropResponse: true } (forward the request, then
 * cut the client's socket instead of answering), { status, body } (answer
 * without forwarding) or nothing (forward). Every request is logged in
 * `log`; `inFlight` counts forwarded requests not answered yet, per path.
 */
export async function httpProxy(targetPort, hook = () => undefined) {
  const log = [];
  const streams = new Set();
  const inFlight = new Map();
  const maxInFlight = new Map();
  const srv = createHttpServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const path = req.url.split("?")[0];
      const entry = { method: req.method, url: req.url, path, headers: req.headers, body, at: Date.now() };
      log.push(entry);
      const decision = hook(entry) ?? {};
      if (decision.status) {
        res.writeHead(decision.status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(decision.body ?? { code: decision.status, error: "refused by the test proxy" }));
        entry.status = decision.status;
        return;
      }
      const key = `${req.method} ${path}`;
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
      maxInFlight.set(key, Math.max(maxInFlight.get(key) ?? 0, inFlight.get(key)));
      let counted = true;
      const done = () => {
        if (counted) inFlight.set(key, inFlight.get(key) - 1);
        counted = false;
      };
      const up = request({ host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        entry.status = upRes.statusCode;
        if (decision.dropResponse) {
          entry.dropped = true;
          upRes.resume();
          upRes.on("end", () => {
            done();
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(upRes.statusCode, upRes.headers);
        res.flushHeaders();
        if (path.endsWith("/sse/stream")) {
          const s = { req, res, upRes };
          streams.add(s);
          upRes.on("close", () => streams.delete(s));
          res.on("close", () => {
            streams.delete(s);
            upRes.destroy();
          });
        }
        upRes.on("end", done);
        upRes.on("close", done);
        upRes.pipe(res);
      });
      up.on("error", () => {
        done();
        req.socket.destroy();
      });
      up.end(body);
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const port = srv.address().port;
  return {
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    log,
    maxInFlight,
    /** Cuts the open event streams (the client sees the stream drop). */
    cutStreams() {
      for (const s of [...streams]) {
        s.upRes.destroy();
        s.req.socket.destroy();
      }
      streams.clear();
    },
    get streams() {
      return streams.size;
    },
    async close() {
      this.cutStreams();
      srv.closeAllConnections?.();
      await new Promise((r) => srv.close(r));
    },
  };
}
