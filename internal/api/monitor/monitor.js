// The gameserver monitor: reads /monitor/events (Server-Sent Events, one
// JSON snapshot a second) with the API key as a Bearer token, and draws
// it. EventSource cannot send headers, so the stream is read with fetch.
// Every value from the server is written with textContent, never as HTML.
"use strict";

const KEY = "gameserver.monitor.key";
const HISTORY = 120; // samples kept for the charts (two minutes)
const STALE_MS = 5000; // no snapshot for this long: reconnect

const $ = (id) => document.getElementById(id);
const history = [];
let key = "";
let abort = null;
let lastSnapshot = 0;
let retryMs = 1000;
let retryTimer = 0;

function setConn(state, text) {
  $("conn-dot").className = "dot " + state;
  $("conn-text").textContent = text;
}

function showLogin(message) {
  if (abort) abort.abort();
  $("dash").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConn("bad", message ? "key refused" : "no key");
  $("key").focus();
}

function showDash() {
  $("login").hidden = true;
  $("dash").hidden = false;
  $("forget").hidden = false;
}

async function connect() {
  clearTimeout(retryTimer);
  if (abort) abort.abort();
  const ctrl = new AbortController();
  abort = ctrl;
  setConn("wait", "connecting…");
  let res;
  try {
    res = await fetch("/monitor/events", {
      headers: { Authorization: "Bearer " + key, Accept: "text/event-stream" },
      cache: "no-store",
      signal: ctrl.signal,
    });
  } catch {
    if (!ctrl.signal.aborted) reconnect("server unreachable");
    return;
  }
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    key = "";
    showLogin("That key was refused.");
    return;
  }
  if (!res.ok || !res.body) {
    reconnect("HTTP " + res.status);
    return;
  }
  showDash();
  retryMs = 1000;
  lastSnapshot = Date.now();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        onBlock(block);
      }
    }
  } catch {
    // aborted or cut: reconnect below
  }
  if (!ctrl.signal.aborted) reconnect("stream ended");
}

function reconnect(why) {
  setConn("wait", why + ": retrying");
  retryTimer = setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

function onBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (event !== "snapshot" || data.length === 0) return;
  let snap;
  try {
    snap = JSON.parse(data.join("\n"));
  } catch {
    return;
  }
  lastSnapshot = Date.now();
  render(snap);
}

setInterval(() => {
  if (key && abort && !abort.signal.aborted && lastSnapshot && Date.now() - lastSnapshot > STALE_MS) {
    lastSnapshot = 0;
    abort.abort();
    reconnect("no data");
  }
}, 1000);

// Formatting.
const int = (n) => Math.round(n || 0).toLocaleString("en-US");
function rate(n) {
  n = n || 0;
  if (n >= 100) return int(n);
  return n.toFixed(1);
}
function ms(n) {
  if (n == null) return "–";
  if (n === 0) return "0 ms";
  if (n < 1) return (n * 1000).toFixed(0) + " µs";
  if (n < 10) return n.toFixed(2) + " ms";
  return n.toFixed(1) + " ms";
}
function duration(sec) {
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}
// A p99 is a bucket bound from the server's tick histogram: at most this.
const atMost = (n) => (n ? "≤ " + ms(n) : "–");
const sum = (list, f) => list.reduce((a, x) => a + (f(x) || 0), 0);

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text instanceof Node) td.appendChild(text);
  else td.textContent = text;
  tr.appendChild(td);
  return td;
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function fill(tbody, rows, cols, empty) {
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const [get, cls] of cols) cell(tr, get(r), cls);
    frag.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, empty, "empty");
    td.colSpan = cols.length;
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
}

function render(s) {
  const now = new Date(s.time).getTime();
  const nodes = s.nodes || [];
  const kinds = s.kinds || [];
  const rooms = s.rooms || [];
  const msgsIn = sum(nodes, (n) => n.messagesInPerSec);
  const msgsOut = sum(nodes, (n) => n.messagesOutPerSec);
  const ticks = sum(nodes, (n) => n.ticksPerSec);
  const tickMean = ticks > 0 ? sum(nodes, (n) => n.tickMeanMs * n.ticksPerSec) / ticks : 0;
  const tickP99 = Math.max(0, ...nodes.map((n) => n.tickP99Ms || 0));
  const ws = sum(nodes, (n) => n.connectionsWs), sse = sum(nodes, (n) => n.connectionsSse);
  const draining = nodes.filter((n) => n.status === "draining").length;
  const unreachable = nodes.filter((n) => n.status === "unreachable").length;

  $("kpi-nodes").textContent = int(nodes.length);
  const notReady = [draining && `${draining} draining`, unreachable && `${unreachable} unreachable`].filter(Boolean);
  $("kpi-nodes-sub").textContent = notReady.length ? notReady.join(" · ") : "all ready";
  $("kpi-rooms").textContent = int(sum(nodes, (n) => n.rooms));
  $("kpi-kinds-sub").textContent = `${kinds.filter((k) => k.rooms > 0).length} of ${kinds.length} types in use`;
  $("kpi-players").textContent = int(sum(nodes, (n) => n.players));
  $("kpi-sessions-sub").textContent = `${int(sum(nodes, (n) => n.sessions))} sessions`;
  $("kpi-conns").textContent = int(ws + sse);
  $("kpi-conns-sub").textContent = `${int(ws)} WebSocket · ${int(sse)} SSE`;
  $("kpi-msgs-in").textContent = rate(msgsIn);
  $("kpi-msgs-out").textContent = rate(msgsOut);
  $("kpi-tick").textContent = ticks > 0 ? ms(tickMean) : "–";
  $("kpi-tick-sub").textContent = `mean; p99 ${atMost(tickP99)}`;
  const wh = s.webhooks;
  $("kpi-hooks").textContent = wh ? int(wh.delivered) : "off";
  $("kpi-hooks-sub").textContent = wh ? `${int(wh.queued)} queued · ${int(wh.failed)} failed · ${int(wh.dropped)} dropped` : "no URLs configured";
  $("updated").textContent = "updated " + new Date(s.time).toLocaleTimeString();
  setConn("live", "live");

  fill($("nodes"), nodes, [
    [(n) => n.name, "id"],
    [(n) => span("badge " + n.status, n.status)],
    [(n) => duration((now - new Date(n.started).getTime()) / 1000)],
    [(n) => int(n.connectionsWs), "n"],
    [(n) => int(n.connectionsSse), "n"],
    [(n) => int(n.sessions), "n"],
    [(n) => int(n.rooms), "n"],
    [(n) => int(n.players), "n"],
    [(n) => rate(n.messagesInPerSec), "n"],
    [(n) => rate(n.messagesOutPerSec), "n"],
    [(n) => rate(n.ticksPerSec), "n"],
    [(n) => (n.ticksPerSec > 0 ? ms(n.tickMeanMs) : "–"), "n"],
    [(n) => atMost(n.tickP99Ms), "n"],
    [(n) => int(n.goroutines), "n"],
  ], "no nodes");

  fill($("kinds"), kinds, [
    [(k) => k.kind, "id"],
    [(k) => int(k.rooms), "n"],
    [(k) => int(k.players), "n"],
    [(k) => (k.tickP99Ms > 0 ? ms(k.tickMeanMs) : "–"), "n"],
    [(k) => atMost(k.tickP99Ms), "n"],
  ], "no room types");

  $("rooms-note").textContent = s.roomsTotal > rooms.length ? `(the ${rooms.length} fullest of ${int(s.roomsTotal)})` : `(${int(s.roomsTotal)})`;
  fill($("rooms"), rooms, [
    [(r) => r.id, "id"],
    [(r) => r.kind],
    [(r) => r.node],
    [(r) => {
      const wrap = document.createElement("span");
      const bar = document.createElement("span");
      bar.className = "bar";
      const fillEl = document.createElement("span");
      fillEl.style.width = Math.min(100, (100 * r.players) / Math.max(1, r.maxPlayers)) + "%";
      bar.appendChild(fillEl);
      wrap.append(bar, `${r.players} / ${r.maxPlayers}`);
      return wrap;
    }],
    [(r) => {
      const wrap = document.createElement("span");
      if (r.locked) wrap.appendChild(span("flag", "locked"));
      if (r.private) wrap.appendChild(span("flag", "private"));
      return wrap;
    }],
    [(r) => duration((now - new Date(r.created).getTime()) / 1000), "n"],
    [(r) => (r.metadata ? JSON.stringify(r.metadata) : ""), "meta"],
  ], "no rooms");

  history.push({ t: now, in: msgsIn, out: msgsOut, mean: tickMean, p99: tickP99 });
  while (history.length > HISTORY) history.shift();
  chart($("chart-msgs"), [["in", "--in"], ["out", "--out"]]);
  chart($("chart-tick"), [["mean", "--mean"], ["p99", "--p99"]]);
}

function chart(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const left = 48, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const p of history) for (const [k] of series) max = Math.max(max, p[k]);
  max = niceMax(max);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = css.getPropertyValue("--muted");
  g.strokeStyle = css.getPropertyValue("--line");
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath();
    g.moveTo(left, Math.round(y) + 0.5);
    g.lineTo(left + pw, Math.round(y) + 0.5);
    g.stroke();
    const v = (max * i) / 4;
    g.textAlign = "right";
    g.fillText(v >= 100 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(3))), left - 6, y + 4);
  }
  g.textAlign = "left";
  g.fillText(`−${HISTORY} s`, left, h - 4);
  g.textAlign = "right";
  g.fillText("now", left + pw, h - 4);
  const step = pw / (HISTORY - 1);
  const x0 = left + pw - step * (history.length - 1);
  for (const [k, color] of series) {
    g.strokeStyle = css.getPropertyValue(color);
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((p, i) => {
      const x = x0 + step * i, y = top + ph - (max ? (ph * p[k]) / max : 0);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const e = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * e) return m * e;
  return 10 * e;
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  key = $("key").value.trim();
  $("key").value = "";
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  connect();
});

$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  key = "";
  showLogin("");
});

key = sessionStorage.getItem(KEY) || "";
if (key) connect();
else showLogin("");
