// The demo pages in headless Chromium against a real server: they load
// from the server, join, play, chat and measure their round trip.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitFor, sleep } from "../helpers/server.mjs";
import { launchBrowser, newPage, artifact } from "../helpers/browser.mjs";

let srv, browser;
const pages = [];
async function open(path) {
  const page = await newPage(browser);
  pages.push(page);
  await page.goto(srv.httpUrl + path);
  return page;
}

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test("the server serves the client bundle and the pages", async () => {
  const js = await fetch(srv.httpUrl + "/gameserver.js");
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /javascript/);
  assert.match(await js.text(), /export\{/);
  for (const path of ["/", "/arena.html", "/chat.html", "/demo.js", "/demo.css", "/favicon.svg"]) {
    assert.equal((await fetch(srv.httpUrl + path)).status, 200, path);
  }
});

test("arena: two players in two browser contexts see each other's dots move", async () => {
  const a = await open("/arena.html");
  const b = await open("/arena.html");
  const joined = (p) => p.evaluate(() => window.demo.room?.joined && window.demo.players.size === 2);
  await waitFor(() => joined(a), 10000, "a sees two players");
  await waitFor(() => joined(b), 10000, "b sees two players");
  const aId = await a.evaluate(() => window.demo.room.playerId);
  const bRoom = await b.evaluate(() => window.demo.room.id);
  assert.equal(await a.evaluate(() => window.demo.room.id), bRoom, "same room");
  const seen = () => b.evaluate((id) => ({ ...window.demo.players.get(id) }), aId);
  const before = await seen();

  // a steers right and down for a moment
  await a.keyboard.down("ArrowRight");
  await a.keyboard.down("s");
  await sleep(600);
  await a.keyboard.up("ArrowRight");
  await a.keyboard.up("s");
  const after = await waitFor(async () => {
    const p = await seen();
    return p.x > before.x + 40 && p.y > before.y + 40 ? p : null;
  }, 5000, "b sees a's dot move right and down");
  assert.ok(after.lastSeq > 0, "a's inputs were applied");
  // and the other way round: b moves left, a sees it
  const bId = await b.evaluate(() => window.demo.room.playerId);
  const bBefore = await a.evaluate((id) => ({ ...window.demo.players.get(id) }), bId);
  await b.keyboard.down("ArrowLeft");
  await sleep(500);
  await b.keyboard.up("ArrowLeft");
  await waitFor(async () => (await a.evaluate((id) => window.demo.players.get(id)?.x, bId)) < bBefore.x - 30, 5000, "a sees b's dot move left");

  // The page shows its RTT from its own pings, and the transport.
  const rttText = await waitFor(async () => {
    const t = await a.textContent("#rtt");
    return /ms$/.test(t) ? t : null;
  }, 5000, "an RTT is shown");
  assert.ok(parseFloat(rttText) > 0, `rtt ${rttText}`);
  assert.ok(await a.evaluate(() => window.demo.client.rtt > 0));
  assert.equal(await a.textContent("#transport"), "websocket");
  assert.equal(await a.getAttribute("#status", "data-state"), "open");
  assert.equal(await a.textContent("#player"), aId);
  await sleep(300); // let the dots settle for the picture
  await a.screenshot({ path: artifact("arena.png") });
  for (const p of [a, b]) assert.deepEqual(p.problems, [], "no page errors");
});

test("chat: a message from one page reaches the other; joins and leaves are shown", async () => {
  const alice = await open("/chat.html?name=alice");
  await waitFor(() => alice.evaluate(() => window.demo.room?.joined), 10000, "alice joined");
  const roomId = await alice.evaluate(() => window.demo.room.id);
  const bob = await open(`/chat.html?name=bob&room=${roomId}`);
  await waitFor(() => bob.evaluate(() => window.demo.room?.joined), 10000, "bob joined");
  await waitFor(() => alice.evaluate(() => window.demo.lines.some((l) => l.kind === "system" && l.text === "bob joined")), 5000, "alice sees bob join");

  await alice.fill("#text", "hello bob, this is alice");
  await alice.press("#text", "Enter");
  await waitFor(
    () => bob.evaluate(() => window.demo.lines.some((l) => l.kind === "message" && l.name === "alice" && l.text === "hello bob, this is alice")),
    5000,
    "bob gets alice's message",
  );
  await bob.fill("#text", "hi alice");
  await bob.click("button[type=submit] >> text=Send");
  await waitFor(() => alice.evaluate(() => window.demo.lines.some((l) => l.name === "bob" && l.text === "hi alice")), 5000, "alice gets bob's reply");
  assert.equal(await alice.inputValue("#text"), "", "the composer was cleared");
  const roster = await alice.evaluate(() => [...window.demo.roster().values()].sort());
  assert.deepEqual(roster, ["alice", "bob"]);
  await alice.screenshot({ path: artifact("chat.png") });

  // A late joiner gets the history.
  const carol = await open(`/chat.html?name=carol&room=${roomId}`);
  await waitFor(() => carol.evaluate(() => window.demo.lines.filter((l) => l.history).length === 2), 5000, "carol gets the history");

  await bob.click("#leave");
  await waitFor(() => alice.evaluate(() => window.demo.lines.some((l) => l.text === "bob left")), 5000, "alice sees bob leave");
  for (const p of [alice, bob, carol]) assert.deepEqual(p.problems, [], "no page errors");
});

test("landing page: connection state, RTT and the open rooms", async () => {
  const page = await open("/");
  await waitFor(async () => (await page.getAttribute("#status", "data-state")) === "open", 10000, "connected");
  const rtt = await waitFor(async () => {
    const t = await page.textContent("#rtt2");
    return /ms$/.test(t) ? t : null;
  }, 5000, "an RTT is shown");
  assert.ok(parseFloat(rtt) > 0);
  assert.equal(await page.textContent("#transport"), "websocket");
  assert.ok(await page.locator("a[href='/arena.html']").count() > 0);
  assert.ok(await page.locator("a[href='/chat.html']").count() > 0);
  // The arena and chat rooms of the tests above are listed with join links.
  await waitFor(() => page.locator("#rooms a[href^='/arena.html?room=']").count(), 8000, "an arena room listed");
  await waitFor(() => page.locator("#rooms a[href^='/chat.html?room=']").count(), 8000, "a chat room listed");
  await page.screenshot({ path: artifact("index.png") });
  assert.deepEqual(page.problems, []);
});
