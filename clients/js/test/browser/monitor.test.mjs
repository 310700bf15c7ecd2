// The operator's monitor page in headless Chromium against a real server:
// it asks for the API key, refuses a wrong one, and shows the node's
// rooms, players and message rate moving while a few chat bots talk.
// A screenshot is saved as test/artifacts/monitor.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { encode, decode } from "@msgpack/msgpack";
import { startServer, waitFor, sleep } from "../helpers/server.mjs";
import { launchBrowser, newPage, artifact } from "../helpers/browser.mjs";

const KEY = "monitor-test-key-0123456789";
const HELLO = 0x0001, WELCOME = 0x0002, PING = 0x0003, PONG = 0x0004, JOIN = 0x0010, JOINED = 0x0011, SAY = 0x1100;
/** Server messages outside the sequence: WELCOME, PING, PONG, KICK, MOVE, RESUMED. */
const UNSEQUENCED = new Set([WELCOME, PING, PONG, 0x0006, 0x0007, 0x0009]);

function message(type, body) {
  const b = encode(body);
  const out = new Uint8Array(2 + b.length);
  out[0] = type >> 8;
  out[1] = type & 0xff;
  out.set(b, 2);
  return out;
}

/** A chat player speaking the wire protocol: HELLO, JOIN chat, then Say every `every` ms. */
class Bot {
  constructor(url, name) {
    this.url = url;
    this.name = name;
    this.sent = 0;
    /** Sequenced server messages received, acked in PONGs. */
    this.received = 0;
    this.timer = null;
  }

  start() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.binaryType = "nodebuffer";
      const fail = setTimeout(() => reject(new Error(`${this.name}: no JOINED within 5 s`)), 5000);
      ws.on("error", reject);
      ws.on("open", () => ws.send(message(HELLO, [1, null, "monitor-test-bot"])));
      ws.on("message", (data) => {
        const type = (data[0] << 8) | data[1];
        const body = data.length > 2 ? decode(data.subarray(2)) : null;
        if (!UNSEQUENCED.has(type)) this.received++;
        if (type === WELCOME) ws.send(message(JOIN, [1, 0, "chat", "", { name: this.name }]));
        else if (type === JOINED) {
          clearTimeout(fail);
          resolve(body);
        } else if (type === PING) ws.send(message(PONG, [body[0], this.received]));
      });
    });
  }

  talk(every) {
    this.timer = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(message(SAY, [`${this.name} says ${++this.sent}`]));
    }, every);
  }

  quiet() {
    clearInterval(this.timer);
  }

  close() {
    this.quiet();
    this.ws?.close();
  }
}

let srv, browser, page;
const bots = [];

before(async () => {
  srv = await startServer({ args: ["--api-keys", KEY] });
  browser = await launchBrowser();
  page = await newPage(browser, { width: 1440, height: 900 });
});

after(async () => {
  for (const b of bots) b.close();
  await browser?.close();
  await srv?.stop();
});

const text = (sel) => page.locator(sel).textContent();
const number = async (sel) => Number((await text(sel)).replace(/[^0-9.]/g, ""));

test("the monitor asks for the API key and refuses a wrong one", async () => {
  const res = await fetch(srv.httpUrl + "/monitor/events");
  assert.equal(res.status, 401, "the stream needs the key");
  await page.goto(srv.httpUrl + "/monitor");
  await page.locator("#login").waitFor({ state: "visible" });
  assert.equal(await page.locator("#dash").isVisible(), false, "no data before a key");
  await page.fill("#key", "not-the-key-0123456789");
  await page.click("#login button[type=submit]");
  await waitFor(async () => (await text("#login-error")).includes("refused"), 5000, "the wrong key is refused");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused key is not kept");
  await page.fill("#key", KEY);
  await page.click("#login button[type=submit]");
  await page.locator("#dash").waitFor({ state: "visible" });
  await waitFor(async () => (await text("#conn-text")) === "live", 5000, "the stream is live");
  assert.equal(await text("#nodes tr td.id"), (await (await fetch(srv.httpUrl + "/api/v1/nodes", { headers: { Authorization: `Bearer ${KEY}` } })).json()).nodes[0].name);
  await waitFor(async () => (await text("#kpi-rooms")) === "0" && (await text("#kpi-msgs-in")) === "0.0", 5000, "an idle node shows zeros");
});

test("the live numbers follow the load and fall back when it stops", async () => {
  for (let i = 0; i < 4; i++) {
    const b = new Bot(srv.wsUrl, `bot-${i}`);
    bots.push(b);
    await b.start();
  }
  for (const b of bots) b.talk(50); // 20 messages a second each, under the rate limit
  await waitFor(async () => (await text("#kpi-players")) === "4" && (await text("#kpi-rooms")) === "1", 8000, "four players in one room");
  await waitFor(async () => (await number("#kpi-msgs-in")) >= 40, 8000, "messages in per second under load");

  // The figures keep moving: several fresh snapshots, each with traffic.
  const stamps = new Set();
  const rates = [];
  const until = Date.now() + 3500;
  while (Date.now() < until) {
    stamps.add(await text("#updated"));
    rates.push(await number("#kpi-msgs-in"));
    await sleep(250);
  }
  assert.ok(stamps.size >= 3, `only ${stamps.size} updates in 3.5 s`);
  assert.ok(Math.min(...rates) > 0, `a sample without traffic: ${rates}`);
  assert.ok(rates.every((r) => r >= 40 && r <= 120), `in/s ${rates} outside what 4 bots at 20/s send`);
  assert.ok((await number("#kpi-msgs-out")) >= 4 * (await number("#kpi-msgs-in")) * 0.5, "each message fans out to four players");
  assert.match(await text("#rooms"), /chat/);
  assert.match(await text("#rooms"), /4 \/ 64/);
  assert.match(await text("#kinds"), /chat/);
  assert.match(await text("#nodes"), /ready/);
  assert.match(await text("#kpi-tick-sub"), /p99 ≤ [0-9.]+ (µs|ms)/, "the tick time is measured");
  assert.ok((await number("#nodes tr td:nth-child(11)")) >= 1, "the chat room ticks once a second");
  await page.screenshot({ path: artifact("monitor.png"), fullPage: true });

  for (const b of bots) b.quiet();
  await waitFor(async () => (await text("#kpi-msgs-in")) === "0.0", 6000, "the rate falls to zero when the bots stop");
  // Disconnected, the bots' sessions wait for a resume: no connection left.
  for (const b of bots) b.close();
  await waitFor(async () => (await text("#kpi-conns")) === "0" && (await text("#kpi-sessions-sub")) === "0 sessions", 8000, "the connections close");
});

test("the key stays in the tab until forgotten", async () => {
  await page.reload();
  await page.locator("#dash").waitFor({ state: "visible" });
  await waitFor(async () => (await text("#conn-text")) === "live", 5000, "live again after a reload");
  await page.click("#forget");
  await page.locator("#login").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  // The only console errors are the refused key's 401.
  const problems = page.problems.filter((p) => !p.includes("401"));
  assert.deepEqual(problems, []);
});
