// The HTTP fallback in headless Chromium: pages whose WebSocket is
// unusable (a constructor that fails, or one that never opens) fall back
// to Server-Sent Events and POST, say so, and play and chat with pages on
// WebSocket. Then the fallback's own recovery: a cut event stream comes
// back by itself (EventSource and Last-Event-ID), a longer outage is
// resumed with a new open, and the working transport is remembered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { metric, startServer, waitFor, sleep } from "../helpers/server.mjs";
import { launchBrowser, newPage, artifact } from "../helpers/browser.mjs";
import { tcpProxy } from "../helpers/proxy.mjs";

let srv, browser;
const pages = [];

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

/**
 * A page whose WebSocket cannot work: "fail" sockets error and close
 * (1006) right away, as when a proxy refuses the upgrade; "hang" sockets
 * never open; "throw" constructors throw.
 */
async function blockedPage(mode) {
  const page = await newPage(browser);
  pages.push(page);
  await page.addInitScript((mode) => {
    window.webSocketsTried = 0;
    class BlockedWebSocket {
      constructor(url) {
        window.webSocketsTried++;
        if (mode === "throw") throw new DOMException("WebSockets are disabled here", "SecurityError");
        this.url = url;
        this.readyState = 0;
        this.binaryType = "blob";
        this.onopen = this.onmessage = this.onerror = this.onclose = null;
        if (mode === "fail") {
          setTimeout(() => {
            this.readyState = 3;
            this.onerror?.({ type: "error" });
            this.onclose?.({ code: 1006, reason: "" });
          }, 20);
        }
      }
      send() {
        throw new DOMException("not open", "InvalidStateError");
      }
      close() {
        this.readyState = 3;
      }
    }
    window.WebSocket = BlockedWebSocket;
  }, mode);
  return page;
}

async function open(path, page) {
  page ??= await newPage(browser);
  if (!pages.includes(page)) pages.push(page);
  await page.goto((page.base ?? srv.httpUrl) + path);
  return page;
}

test("arena: a page without WebSockets falls back to SSE, shows it, and plays with a WebSocket page", async () => {
  const a = await open("/arena.html", await blockedPage("fail"));
  await waitFor(() => a.evaluate(() => window.demo.room?.joined), 10000, "a joined over the fallback");
  const roomId = await a.evaluate(() => window.demo.room.id);
  const b = await open(`/arena.html?room=${roomId}`);
  const both = (p) => p.evaluate(() => window.demo.room?.joined && window.demo.players.size === 2);
  await waitFor(() => both(a), 10000, "a sees two players");
  await waitFor(() => both(b), 10000, "b sees two players");
  assert.equal(await a.textContent("#transport"), "sse");
  assert.equal(await b.textContent("#transport"), "websocket");
  assert.equal(await a.evaluate(() => window.demo.client.transport), "sse");
  assert.ok((await a.evaluate(() => window.webSocketsTried)) >= 1, "a WebSocket was tried first");

  const aId = await a.evaluate(() => window.demo.room.playerId);
  const bId = await b.evaluate(() => window.demo.room.playerId);
  const pos = (p, id) => p.evaluate((id) => ({ ...window.demo.players.get(id) }), id);
  // The SSE page steers: the WebSocket page sees its dot move.
  const a0 = await pos(b, aId);
  await a.keyboard.down("ArrowRight");
  await a.keyboard.down("ArrowDown");
  await sleep(600);
  await a.keyboard.up("ArrowRight");
  await a.keyboard.up("ArrowDown");
  await waitFor(async () => {
    const p = await pos(b, aId);
    return p.x > a0.x + 40 && p.y > a0.y + 40;
  }, 5000, "b sees a's dot move");
  // And the other way round.
  const b0 = await pos(a, bId);
  await b.keyboard.down("ArrowLeft");
  await sleep(500);
  await b.keyboard.up("ArrowLeft");
  await waitFor(async () => (await pos(a, bId)).x < b0.x - 30, 5000, "a sees b's dot move");
  // Round trips are measured over the fallback too.
  await waitFor(async () => /ms$/.test(await a.textContent("#rtt")), 5000, "an RTT on the SSE page");
  await sleep(300);
  await a.screenshot({ path: artifact("arena-sse.png") });
  for (const p of [a, b]) assert.deepEqual(p.problems, [], "no page errors");
});

test("chat: a page whose WebSocket never opens falls back after a few seconds; messages go both ways", async () => {
  const alice = await open("/chat.html?name=alice", await blockedPage("hang"));
  const t0 = Date.now();
  await waitFor(() => alice.evaluate(() => window.demo.room?.joined), 15000, "alice joined");
  assert.ok(Date.now() - t0 >= 2500, "the WebSocket had its few seconds first");
  assert.equal(await alice.textContent("#transport"), "sse");
  const roomId = await alice.evaluate(() => window.demo.room.id);
  const bob = await open(`/chat.html?name=bob&room=${roomId}`);
  await waitFor(() => bob.evaluate(() => window.demo.room?.joined), 10000, "bob joined");
  assert.equal(await bob.textContent("#transport"), "websocket");
  await waitFor(() => alice.evaluate(() => window.demo.lines.some((l) => l.text === "bob joined")), 5000, "alice sees bob join");
  await alice.fill("#text", "hello over server-sent events");
  await alice.press("#text", "Enter");
  await waitFor(() => bob.evaluate(() => window.demo.lines.some((l) => l.name === "alice" && l.text === "hello over server-sent events")), 5000, "bob gets it");
  await bob.fill("#text", "hi, websocket here");
  await bob.press("#text", "Enter");
  await waitFor(() => alice.evaluate(() => window.demo.lines.some((l) => l.name === "bob" && l.text === "hi, websocket here")), 5000, "alice gets it");
  // A constructor that throws falls back at once.
  const carol = await open(`/chat.html?name=carol&room=${roomId}`, await blockedPage("throw"));
  await waitFor(() => carol.evaluate(() => window.demo.room?.joined), 10000, "carol joined");
  assert.equal(await carol.textContent("#transport"), "sse");
  await waitFor(() => carol.evaluate(() => window.demo.lines.filter((l) => l.history).length === 2), 5000, "carol gets the history");
  await alice.screenshot({ path: artifact("chat-sse.png") });
  for (const p of [alice, bob, carol]) assert.deepEqual(p.problems, [], "no page errors");
});

test("over SSE, a cut stream resumes by itself; a longer outage resumes with a new open; the page stays on SSE", async () => {
  const proxy = await tcpProxy(srv.port);
  const page = await blockedPage("fail");
  page.base = proxy.httpUrl; // the page and its connections go through the proxy
  try {
    await open("/arena.html", page);
    await waitFor(() => page.evaluate(() => window.demo.room?.joined && window.demo.client.transport === "sse"), 10000, "joined over SSE");
    await page.evaluate(() => {
      const r = window.demo.room;
      window.ticks = [];
      window.events = [];
      r.onState(({ tick }) => window.ticks.push(Number(tick)));
      for (const e of ["reconnecting", "reconnected", "leave"]) r.on(e, (v) => window.events.push({ e, resumed: v?.resumed }));
    });
    const { playerId, tried } = await page.evaluate(() => ({ playerId: window.demo.room.playerId, tried: window.webSocketsTried }));
    const resumed0 = await metric(srv, "gameserver_sessions_resumed_total");

    // A short cut: EventSource reconnects with Last-Event-ID, the server
    // resumes the session from there; the client sees no reconnection.
    await sleep(300);
    proxy.cut();
    await sleep(2500);
    let ev = await page.evaluate(() => window.events);
    assert.deepEqual(ev, [], "no reconnection at the client's level");
    assert.equal(await metric(srv, "gameserver_sessions_resumed_total"), resumed0 + 1, "the stream resumed the session");

    // A longer outage: the stream does not come back within a few
    // seconds; the client resumes with RESUME over a new open.
    proxy.refuse(true);
    proxy.cut();
    await waitFor(() => page.evaluate(() => window.events.some((x) => x.e === "reconnecting")), 10000, "reconnecting");
    await sleep(500);
    proxy.refuse(false);
    await waitFor(() => page.evaluate(() => window.events.some((x) => x.e === "reconnected")), 15000, "reconnected");
    ev = await page.evaluate(() => window.events);
    assert.deepEqual(ev.find((x) => x.e === "reconnected"), { e: "reconnected", resumed: true });
    assert.ok(!ev.some((x) => x.e === "leave"));
    assert.ok((await metric(srv, "gameserver_sessions_resumed_total")) >= resumed0 + 2, "and RESUME did again");
    await sleep(500);
    const after = await page.evaluate(() => ({ playerId: window.demo.room.playerId, tried: window.webSocketsTried, ticks: window.ticks, transport: window.demo.client.transport }));
    assert.equal(after.playerId, playerId, "the same player");
    assert.equal(after.transport, "sse");
    assert.equal(after.tried, tried, "the working transport was remembered: no new WebSocket attempt");
    for (let i = 1; i < after.ticks.length; i++) assert.equal(after.ticks[i], after.ticks[i - 1] + 1, `state ${i} follows state ${i - 1}`);
    assert.equal(await page.textContent("#transport"), "sse");
    // Chromium reports the failed requests of the outage on the console.
    assert.deepEqual(page.problems.filter((p) => !/ERR_CONNECTION|ERR_EMPTY_RESPONSE|Failed to load resource|EventSource/.test(p)), []);
  } finally {
    await page.context().close();
    await proxy.close();
  }
});
