// The HTTP fallback transport (Server-Sent Events and POST) against real
// server processes, through an HTTP proxy that loses responses, cuts
// event streams and refuses requests on demand. Node has no EventSource:
// the tests use a small one (helpers/eventsource.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GameServer, freePort, metric, startServer, waitFor, sleep } from "../helpers/server.mjs";
import { httpProxy } from "../helpers/proxy.mjs";
import { NodeEventSource } from "../helpers/eventsource.mjs";
import { gs, newClient, recorder, wireRecorder, checkPongAcks } from "../helpers/client.mjs";

const { ARENA_INPUT } = gs;
const SAY = 0x1100, SAID = 0x1101;

const sseClient = (url, opts = {}) => newClient(url, { transport: "sse", eventSource: NodeEventSource, minReconnectDelay: 50, maxReconnectDelay: 300, ...opts });

/** The POSTs of /sse/send in a proxy log, decoded: { firstSeq, msgs, body, dropped, status }. */
function posts(log) {
  return log
    .filter((e) => e.method === "POST" && e.path === "/sse/send")
    .map((e) => {
      const [firstSeq, msgs] = gs.decodeValue(new Uint8Array(e.body));
      return { firstSeq, msgs, body: e.body.toString("hex"), dropped: !!e.dropped, status: e.status };
    });
}

/** a creates a chat room and b joins it; atB collects the texts b hears. */
async function chatPair(a, b) {
  const ra = await a.create("chat", { name: "a" });
  const rb = await b.join(ra.id, { name: "b" });
  const atB = [];
  rb.onMessage(SAID, ([, , t]) => atB.push(t));
  return { ra, rb, atB };
}

test("endpoints of the fallback follow the WebSocket URL", () => {
  assert.deepEqual(gs.sseEndpoints("ws://h:1/ws?session=s"), {
    open: "http://h:1/sse/open",
    stream: "http://h:1/sse/stream",
    send: "http://h:1/sse/send",
    session: "http://h:1/sse/session",
  });
  assert.equal(gs.sseEndpoints("wss://h/game/ws").open, "https://h/game/sse/open");
  assert.equal(gs.sseAvailable({ eventSource: NodeEventSource, fetch }), true);
  assert.equal(gs.sseAvailable({ fetch }), typeof globalThis.EventSource === "function");
});

test("a session over the fallback plays with WebSocket players; close() ends it at once", async () => {
  const srv = await startServer({ args: ["--ping-interval", "500ms", "--ping-timeout", "500ms"] });
  const a = sseClient(srv.wsUrl);
  const b = newClient(srv.wsUrl);
  try {
    const ra = await a.create("chat", { name: "sse" });
    assert.equal(a.transport, "sse");
    const rb = await b.join(ra.id, { name: "ws" });
    assert.equal(b.transport, "websocket");
    const atA = [];
    const atB = [];
    ra.onMessage(SAID, ([, n, t]) => atA.push(`${n}:${t}`));
    rb.onMessage(SAID, ([, n, t]) => atB.push(`${n}:${t}`));
    ra.send(SAY, ["hello from the fallback"]);
    rb.send(SAY, ["hello from a websocket"]);
    await waitFor(() => atA.length === 2 && atB.length === 2, 5000, "both messages at both ends");
    assert.deepEqual(atA.sort(), atB.sort());
    // Heartbeats in both directions: pings over POST, server pings over the stream.
    await waitFor(() => a.rtt > 0 && a.serverRtt > 0, 5000, "round trips measured");
    await sleep(1500); // past pingInterval + pingTimeout: the server's pings were answered
    assert.equal(a.state, "open");
    const left = new Promise((resolve) => rb.on("presence", (p) => p.event === "leave" && resolve(p)));
    a.close(); // DELETE /sse/session: the session ends at once, no resume window
    assert.equal((await left).playerId, ra.playerId);
    await waitFor(async () => (await metric(srv, "gameserver_sessions")) === 1 && (await metric(srv, "gameserver_sessions_detached")) === 0, 3000, "only b's session left");
  } finally {
    a.close();
    b.close();
    await srv.stop();
  }
});

test("over the fallback too, the client's PONGs ack what it received when the server asks", async () => {
  const srv = await startServer({ args: ["--ping-interval", "30s"] });
  const wire = wireRecorder(gs.sseTransport({ eventSource: NodeEventSource, fetch }));
  const c = newClient(srv.wsUrl, { transport: wire.transport });
  try {
    await c.joinOrCreate("arena", { size: 4 });
    await waitFor(
      () => wire.log.some((e) => e.dir === "out" && e.msg?.type === gs.MsgType.Pong && e.msg.ack >= 32n),
      5000,
      "a PONG acking 32 messages",
    );
    assert.ok(checkPongAcks(wire.log).length > 0);
    assert.equal(c.state, "open");
  } finally {
    c.close();
    await srv.stop();
  }
});

test("POSTs: one in flight, numbered in order, batched; a POST whose response is lost is sent again as is and applied once", async () => {
  const srv = await startServer();
  let sends = 0;
  const proxy = await httpProxy(srv.port, (req) => {
    if (req.method === "POST" && req.path === "/sse/send" && ++sends % 4 === 3) return { dropResponse: true };
  });
  const a = sseClient(proxy.wsUrl);
  const b = newClient(srv.wsUrl);
  try {
    const { ra, atB } = await chatPair(a, b);
    const want = [];
    for (let i = 1; i <= 40; i++) {
      ra.send(SAY, [`m${i}`]);
      want.push(`m${i}`);
      if (i % 5 !== 0) await sleep(i % 3 === 0 ? 30 : 0); // some in one turn: one POST
    }
    await waitFor(() => atB.length >= want.length, 10000, `all messages (${atB.length}/${want.length})`);
    await sleep(300);
    assert.deepEqual(atB, want, "each message once, in order");
    const ps = posts(proxy.log);
    assert.ok(ps.some((p) => p.dropped), "a response was lost");
    assert.equal(proxy.maxInFlight.get("POST /sse/send"), 1, "one POST in flight at a time");
    assert.ok(ps.some((p) => p.msgs.length > 1), "messages sent together share a POST");
    // Each POST starts where the last one applied ended; a POST after a
    // lost response repeats it byte for byte.
    let next = 1;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (i > 0 && ps[i - 1].dropped) {
        assert.equal(p.body, ps[i - 1].body, `POST ${i} repeats the lost one`);
        continue;
      }
      assert.equal(p.firstSeq, next, `POST ${i} firstSeq`);
      assert.equal(p.status, 204);
      next = p.firstSeq + p.msgs.length;
    }
  } finally {
    a.close();
    b.close();
    await proxy.close();
    await srv.stop();
  }
});

test("the event stream drops: EventSource comes back with Last-Event-ID and the session goes on, nothing lost", async () => {
  const srv = await startServer();
  const proxy = await httpProxy(srv.port);
  const a = sseClient(proxy.wsUrl);
  try {
    const room = await a.joinOrCreate("arena");
    const ticks = [];
    room.onState(({ tick }) => ticks.push(tick));
    const log = recorder(a, ["reconnecting", "reconnected"]);
    let sent = 0;
    const pump = setInterval(() => room.send(ARENA_INPUT, [++sent, 1, 0]), 40);
    try {
      for (let i = 0; i < 2; i++) {
        await sleep(400);
        proxy.cutStreams();
        await waitFor(() => proxy.log.some((e) => e.path === "/sse/stream" && e.headers["last-event-id"] && e.at > Date.now() - 3000), 4000, "the stream came back");
      }
      await sleep(500);
    } finally {
      clearInterval(pump);
    }
    await waitFor(() => room.state?.find((p) => p[0] === room.playerId)?.[4] === sent, 5000, `all ${sent} inputs received once`);
    for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i], ticks[i - 1] + 1n, `state ${i} follows state ${i - 1}`);
    assert.deepEqual(log, [], "the client itself never reconnected");
    assert.equal(a.state, "open");
    assert.equal(proxy.log.filter((e) => e.path === "/sse/open").length, 1);
  } finally {
    a.close();
    await proxy.close();
    await srv.stop();
  }
});

test("a stream that cannot come back: the client resumes with a new open, and the POST numbering goes on", async () => {
  const srv = await startServer();
  let refuseResumedStreams = false;
  const proxy = await httpProxy(srv.port, (req) => {
    if (refuseResumedStreams && req.path === "/sse/stream" && req.headers["last-event-id"]) return { status: 503 };
  });
  const a = sseClient(proxy.wsUrl);
  const b = newClient(srv.wsUrl);
  try {
    const { ra, atB } = await chatPair(a, b);
    for (let i = 1; i <= 5; i++) ra.send(SAY, [`before ${i}`]);
    await waitFor(() => atB.length === 5, 5000, "first messages");
    const log = recorder(ra, ["reconnecting", "reconnected"]);
    refuseResumedStreams = true;
    proxy.cutStreams();
    await waitFor(() => log.some((e) => e.event === "reconnecting"), 5000, "the connection counts as lost");
    ra.send(SAY, ["while down"]);
    await waitFor(() => log.some((e) => e.event === "reconnected"), 5000, "reconnected");
    assert.equal(log.find((e) => e.event === "reconnected").value.resumed, true, "the same session, resumed through /sse/open");
    for (let i = 1; i <= 5; i++) ra.send(SAY, [`after ${i}`]);
    await waitFor(() => atB.length === 11, 6000, `all messages (${atB.join(",")})`);
    await sleep(200);
    assert.deepEqual(atB, ["before 1", "before 2", "before 3", "before 4", "before 5", "while down", "after 1", "after 2", "after 3", "after 4", "after 5"]);
    assert.equal(proxy.log.filter((e) => e.path === "/sse/open").length, 2);
    assert.equal(a.transport, "sse");
  } finally {
    a.close();
    b.close();
    await proxy.close();
    await srv.stop();
  }
});

test("a POST that never reached the server before a new open: the client numbers from the open's nextSeq, no POST refused as out of order", async () => {
  const srv = await startServer();
  let firstToken = "";
  let refuseFirstToken = false;
  let refuseResumedStreams = false;
  const proxy = await httpProxy(srv.port, (req) => {
    if (req.path === "/sse/send") {
      firstToken ||= req.headers.authorization;
      // POSTs of the first open never reach the server from now on.
      if (refuseFirstToken && req.headers.authorization === firstToken) return { status: 503 };
    }
    if (refuseResumedStreams && req.path === "/sse/stream" && req.headers["last-event-id"]) return { status: 503 };
  });
  const a = sseClient(proxy.wsUrl);
  const b = newClient(srv.wsUrl);
  try {
    const { ra, atB } = await chatPair(a, b);
    for (let i = 1; i <= 3; i++) ra.send(SAY, [`before ${i}`]);
    await waitFor(() => atB.length === 3, 5000, "first messages");
    refuseFirstToken = true;
    ra.send(SAY, ["never arrived"]); // POSTed, refused by the proxy: the client counted it, the server did not
    await waitFor(() => posts(proxy.log).some((p) => p.status === 503), 5000, "the refused POST");
    const log = recorder(ra, ["reconnecting", "reconnected"]);
    refuseResumedStreams = true;
    proxy.cutStreams();
    await waitFor(() => log.some((e) => e.event === "reconnected"), 8000, "reconnected through a new open");
    ra.send(SAY, ["after"]);
    await waitFor(() => atB.length === 5, 6000, `all messages (${atB.join(",")})`);
    assert.deepEqual(atB, ["before 1", "before 2", "before 3", "never arrived", "after"]);
    const refused = posts(proxy.log).filter((p) => p.status === 409);
    assert.equal(refused.length, 0, `POSTs refused as out of order: ${JSON.stringify(refused.map((p) => p.firstSeq))}`);
    // The refused POST's number was never used: the new open's POSTs start there.
    const lost = posts(proxy.log).find((p) => p.status === 503).firstSeq;
    const afterOpen = posts(proxy.log).filter((p) => p.status === 204 && p.firstSeq >= lost);
    assert.equal(afterOpen[0]?.firstSeq, lost, "the first POST after the new open takes the number the server expects");
  } finally {
    a.close();
    b.close();
    await proxy.close();
    await srv.stop();
  }
});

test("over the fallback, a crashed server's replacement refuses the resume (409) and the client starts over", async () => {
  const port = await freePort();
  let srv = await new GameServer({ port }).start();
  const a = sseClient(srv.wsUrl);
  let next;
  try {
    const room = await a.joinOrCreate("arena");
    const old = room.id;
    const log = recorder(room, ["reconnected", "leave"]);
    await srv.kill();
    next = await new GameServer({ port }).start();
    const ev = await waitFor(() => log.find((e) => e.event === "reconnected"), 10000, "reconnected");
    assert.equal(ev.value.resumed, false);
    assert.equal(ev.value.roomChanged, true);
    assert.notEqual(room.id, old);
    assert.equal(a.transport, "sse");
    assert.ok((await metric(next, "gameserver_sessions_resume_failed_total")) >= 1);
    room.send(ARENA_INPUT, [1, 0, 1]);
    await waitFor(() => room.state?.find((p) => p[0] === room.playerId)?.[3] === 1, 3000, "playing again");
  } finally {
    a.close();
    await srv.kill();
    await next?.stop();
  }
});

test("a refused first open is a typed error (401 → 4500 with the server's reason)", async () => {
  const srv = await startServer({ args: ["--auth-secret", "x".repeat(32)] });
  const a = sseClient(srv.wsUrl, { token: "not-a-jwt" });
  try {
    await assert.rejects(a.connect(), (e) => e.code === gs.ErrorCode.Unauthorized && e.closeCode === 4500 && /malformed/.test(e.message));
  } finally {
    a.close();
    await srv.stop();
  }
});
