// Reconnection in the browser: a cut connection resumes the session; the
// server process is restarted on the same port and the page re-joins; a
// terminal close code (4500) is not retried.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { GameServer, freePort, startServer, waitFor, sleep } from "../helpers/server.mjs";
import { tcpProxy } from "../helpers/proxy.mjs";
import { launchBrowser, newPage, artifact } from "../helpers/browser.mjs";
import { fakeServer } from "../helpers/fake.mjs";
import { gs } from "../helpers/client.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Records the client's and the room's events in the page. */
const record = (page) =>
  page.evaluate(() => {
    window.events = [];
    const c = window.demo.client;
    const r = window.demo.room;
    for (const e of ["reconnecting", "reconnected", "disconnected"]) c.on(e, (v) => window.events.push({ on: "client", e, closeCode: v?.closeCode ?? null }));
    for (const e of ["reconnecting", "reconnected", "disconnected", "leave", "join"]) r.on(e, (v) => window.events.push({ on: "room", e, closeCode: v?.closeCode ?? null }));
  });
const events = (page) => page.evaluate(() => window.events);
const has = (list, on, e) => list.some((x) => x.on === on && x.e === e);

test("the connection is cut: the page resumes its session, same player, no state missed, every input received once", async () => {
  const srv = await startServer();
  const proxy = await tcpProxy(srv.port);
  const page = await newPage(browser);
  try {
    await page.goto(proxy.httpUrl + "/arena.html"); // the page and its WebSocket go through the proxy
    await waitFor(() => page.evaluate(() => window.demo.room?.joined && window.demo.players.size === 1), 10000, "joined");
    await record(page);
    await page.evaluate(() => {
      window.ticks = [];
      window.demo.room.onState(({ tick }) => window.ticks.push(Number(tick)));
    });
    const { roomId, playerId } = await page.evaluate(() => ({ roomId: window.demo.room.id, playerId: window.demo.room.playerId }));
    await page.keyboard.down("ArrowRight");
    for (let cut = 1; cut <= 2; cut++) {
      await sleep(400);
      proxy.cut();
      await waitFor(() => page.evaluate((n) => window.events.filter((x) => x.on === "room" && x.e === "reconnected").length === n, cut), 10000, `resumed after cut ${cut}`);
    }
    await sleep(400);
    await page.keyboard.up("ArrowRight");
    const ev = await events(page);
    assert.ok(!has(ev, "room", "leave") && !has(ev, "room", "join"), JSON.stringify(ev));
    const resumed = await page.evaluate(() => window.demo.log.entries.filter((e) => /resumed in room/.test(e.text)).length);
    assert.equal(resumed, 2, "the page says it resumed");
    const state = await page.evaluate(() => ({ roomId: window.demo.room.id, playerId: window.demo.room.playerId, ticks: window.ticks, sent: Number(document.getElementById("seq").textContent) }));
    assert.equal(state.roomId, roomId);
    assert.equal(state.playerId, playerId);
    for (let i = 1; i < state.ticks.length; i++) assert.equal(state.ticks[i], state.ticks[i - 1] + 1, `state ${i} follows state ${i - 1}`);
    // The room counts every input it received: none lost, none twice.
    let counts;
    await waitFor(async () => {
      counts = await page.evaluate((id) => {
        const p = window.demo.room.state.find((x) => x[0] === id);
        return { sent: Number(document.getElementById("seq").textContent), received: p[4] };
      }, playerId);
      return counts.sent === counts.received;
    }, 5000, "inputs sent = inputs received").catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(counts)}, events ${JSON.stringify(ev)}`);
    });
    assert.equal(await page.getAttribute("#status", "data-state"), "open");
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
    await proxy.close();
    await srv.stop();
  }
});

test("the server restarts on the same port: the page reconnects and re-joins the arena", async () => {
  const port = await freePort();
  let srv = await new GameServer({ port }).start();
  const page = await newPage(browser);
  try {
    await page.goto(srv.httpUrl + "/arena.html");
    await waitFor(() => page.evaluate(() => window.demo.room?.joined && window.demo.players.size === 1), 10000, "joined");
    const oldRoom = await page.evaluate(() => window.demo.room.id);
    await record(page);

    await srv.kill(); // the socket closes under the page
    await waitFor(() => page.evaluate(() => window.demo.client.state === "reconnecting"), 5000, "reconnecting");
    assert.equal(await page.getAttribute("#status", "data-state"), "reconnecting");
    srv = await new GameServer({ port }).start();

    await waitFor(() => page.evaluate(() => window.events.some((x) => x.on === "room" && x.e === "reconnected")), 15000, "room reconnected");
    await waitFor(() => page.evaluate(() => window.demo.client.state === "open" && window.demo.room?.joined && window.demo.players.size === 1), 5000, "back in a room");
    const ev = await events(page);
    for (const [on, e] of [["client", "reconnecting"], ["client", "reconnected"], ["room", "reconnecting"], ["room", "reconnected"], ["room", "join"]]) {
      assert.ok(has(ev, on, e), `${on} ${e} in ${JSON.stringify(ev)}`);
    }
    assert.ok(!has(ev, "room", "leave") && !has(ev, "client", "disconnected"), JSON.stringify(ev));
    assert.equal(ev.find((x) => x.e === "reconnecting").closeCode, 1006);
    const { roomId, playerId, ids } = await page.evaluate(() => ({ roomId: window.demo.room.id, playerId: window.demo.room.playerId, ids: [...window.demo.players.keys()] }));
    assert.notEqual(roomId, oldRoom, "the new process has new rooms");
    assert.deepEqual(ids, [playerId], "the state shows this player again");
    assert.equal(await page.getAttribute("#status", "data-state"), "open");
    assert.ok(await page.locator("#overlay").isHidden(), "no overlay");
    // Still playable after the reconnect.
    const x0 = await page.evaluate((id) => window.demo.players.get(id).x, playerId);
    await page.keyboard.down("ArrowLeft");
    await sleep(400);
    await page.keyboard.up("ArrowLeft");
    await waitFor(async () => (await page.evaluate((id) => window.demo.players.get(id).x, playerId)) < x0 - 20, 5000, "moves after the reconnect");
    // Chromium logs the refused connection attempts while the server is down.
    assert.deepEqual(page.problems.filter((p) => !/WebSocket connection to .* failed/.test(p)), []);
  } finally {
    await page.context().close();
    await srv.kill();
  }
});

/**
 * A fake server that accepts the session and a join, then closes the first
 * connection with code when the test calls closeNow().
 */
async function closingServer(code) {
  let closeNow;
  const trigger = new Promise((r) => (closeNow = r));
  const fake = await fakeServer(async (conn) => {
    await conn.handshake();
    await conn.acceptJoin({ roomID: "r-fake", kind: "arena" });
    conn.send({ type: gs.MsgType.State, tick: 1n, serverTimeNs: 0n, body: gs.encodeArenaState([{ id: `p-${conn.index}`, x: 400, y: 300, lastSeq: 0 }]) });
    if (conn.index > 1) return;
    await trigger;
    if (code === 4500) conn.send({ type: gs.MsgType.Error, code: 401, message: "token expired", ref: 0, reqID: 0 });
    conn.close(code, code === 4500 ? "unauthorized" : "slow consumer");
  });
  fake.closeNow = closeNow;
  return fake;
}

for (const [code, reconnects] of [
  [4500, false],
  [4001, true],
]) {
  test(`close ${code} from the server ${reconnects ? "is followed by a reconnect" : "does not reconnect"}`, async () => {
    const srv = await new GameServer().start(); // serves the page
    const fake = await closingServer(code);
    const page = await newPage(browser);
    try {
      await page.goto(`${srv.httpUrl}/arena.html?server=${encodeURIComponent(fake.url)}`);
      await waitFor(() => page.evaluate(() => window.demo.room?.joined), 10000, "joined the fake room");
      await record(page);
      fake.closeNow();
      if (!reconnects) {
        await waitFor(() => page.evaluate(() => window.demo.client.state === "idle"), 5000, "disconnected");
        await sleep(2500); // well past the first backoff delays
        assert.equal(fake.conns.length, 1, "no second connection");
        const ev = await events(page);
        assert.ok(!has(ev, "client", "reconnecting"), JSON.stringify(ev));
        assert.ok(has(ev, "room", "disconnected") && has(ev, "room", "leave"), JSON.stringify(ev));
        const err = await page.evaluate(() => ({ ...window.demo.client.lastError, message: window.demo.client.lastError.message }));
        assert.equal(err.code, 401);
        assert.equal(err.closeCode, 4500);
        assert.match(err.message, /token expired/);
        assert.equal(await page.getAttribute("#status", "data-state"), "error");
        assert.match(await page.textContent("#overlay-text"), /Disconnected/);
        await page.screenshot({ path: artifact(`close-${code}.png`) });
      } else {
        await waitFor(() => page.evaluate(() => window.events.some((x) => x.on === "room" && x.e === "reconnected")), 5000, "reconnected");
        assert.equal(fake.conns.length, 2, "a second connection");
        const rejoin = fake.conns[1].received.find((m) => m.type === gs.MsgType.Join);
        assert.equal(rejoin.mode, gs.JoinMode.JoinById);
        assert.equal(rejoin.roomID, "r-fake");
        assert.equal(await page.evaluate(() => window.demo.room.playerId), "p-2");
      }
    } finally {
      await page.context().close();
      await fake.close();
      await srv.stop();
    }
  });
}
