// The client against a real gameserver process: sessions, rooms, game
// messages, state, presence, listing, errors and heartbeats.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitFor, sleep } from "../helpers/server.mjs";
import { gs, newClient, nextEvent, wireRecorder, checkPongAcks, WebSocketImpl } from "../helpers/client.mjs";

const { ErrorCode, ARENA_INPUT } = gs;
const SAY = 0x1100, SAID = 0x1101, ROSTER = 0x1102, HISTORY = 0x1103;

let srv;
const clients = [];
const client = (opts) => {
  const c = newClient(srv.wsUrl, opts);
  clients.push(c);
  return c;
};

before(async () => {
  // Fast server pings, so the heartbeat is exercised within the test.
  srv = await startServer({ args: ["--ping-interval", "300ms", "--ping-timeout", "300ms"] });
});
after(async () => {
  for (const c of clients) c.close();
  await srv?.stop();
});

test("a session opens on demand and reports its parameters", async () => {
  const c = client();
  assert.equal(c.state, "idle");
  const states = [];
  c.on("state", (s) => states.push(s));
  await c.connect();
  assert.equal(c.state, "open");
  assert.deepEqual(states, ["connecting", "open"]);
  assert.equal(c.transport, "websocket");
  assert.equal(c.session.pingIntervalMs, 300);
  assert.equal(c.session.pingTimeoutMs, 300);
  assert.ok(c.session.sessionId.length > 0);
  assert.equal(c.session.maxMessage, 65536);
});

test("joinOrCreate joins an arena; inputs move the player; state arrives with bigint ticks", async () => {
  const c = client();
  const room = await c.joinOrCreate("arena", { size: 4 });
  assert.equal(room.kind, "arena");
  assert.ok(room.id && room.playerId, "room and player IDs");
  assert.equal(room.tickRate, 20);
  const first = await new Promise((resolve) => room.onState(resolve));
  assert.equal(typeof first.tick, "bigint");
  assert.equal(typeof first.serverTimeNs, "bigint");
  assert.ok(Math.abs(first.serverTime - Date.now()) < 5000, "serverTime is a wall-clock time in ms");
  const me0 = first.body.find((p) => p[0] === room.playerId);
  assert.ok(me0, "the state lists this player");
  // Steer left for a while: x decreases, lastSeq echoes the input.
  for (let seq = 1; seq <= 6; seq++) {
    assert.equal(room.send(ARENA_INPUT, [seq, -1, 0]), true);
    await sleep(50);
  }
  const moved = await waitFor(() => {
    const me = room.state.find((p) => p[0] === room.playerId);
    return me[3] === 6 && me[1] < me0[1] - 20 ? me : null;
  }, 3000, "the player moved left");
  assert.equal(moved[2], me0[2], "y unchanged");
  // The compact float32 form of the same message works too.
  room.sendBytes(ARENA_INPUT, gs.encodeArenaInput({ seq: 7, dx: 0, dy: 1 }));
  await waitFor(() => room.state.find((p) => p[0] === room.playerId)[3] === 7, 3000, "seq 7 applied");
});

test("two clients share a room and see each other's presence", async () => {
  const a = client();
  const b = client();
  const ra = await a.create("arena");
  const joinedEvent = nextEvent(ra, "presence");
  const rb = await b.join(ra.id);
  assert.equal(rb.id, ra.id);
  assert.notEqual(rb.playerId, ra.playerId);
  const p = await joinedEvent;
  assert.deepEqual(p, { event: "join", playerId: rb.playerId });
  await waitFor(() => ra.state?.some((x) => x[0] === rb.playerId), 3000, "a sees b in the state");
  const list = await a.getAvailableRooms("arena");
  const entry = list.find((r) => r.roomId === ra.id);
  assert.ok(entry, "the room is listed");
  assert.equal(entry.players, 2);
  assert.equal(entry.maxPlayers, 8);
  const left = nextEvent(ra, "presence");
  const leaveEv = nextEvent(rb, "leave");
  await rb.leave();
  assert.deepEqual(await leaveEv, { reason: "left", code: 0 });
  assert.equal(rb.joined, false);
  assert.deepEqual(await left, { event: "leave", playerId: rb.playerId });
  assert.throws(() => rb.send(ARENA_INPUT, [1, 0, 0]), (e) => e.code === ErrorCode.NotInRoom);
  // After leaving, the same client can join again.
  const again = await b.join(ra.id);
  assert.equal(again.id, ra.id);
});

test("chat: history, roster and messages reach handlers registered after the join", async () => {
  const a = client();
  const b = client();
  const ra = await a.create("chat", { name: "alice" });
  ra.send(SAY, ["first!"]);
  await sleep(100);
  const rb = await b.join(ra.id, { name: "bob" });
  // Registered after the await: the history and roster sent right after
  // JOINED are held for them.
  const history = await new Promise((resolve) => rb.onMessage(HISTORY, resolve));
  assert.deepEqual(history, [[ra.playerId, "alice", "first!"]]);
  const roster = await new Promise((resolve) => rb.onMessage(ROSTER, resolve));
  assert.deepEqual(roster.map((m) => m[1]).sort(), ["alice", "bob"]);
  const said = new Promise((resolve) => rb.onMessage(SAID, (body, info) => resolve({ body, info })));
  ra.send(SAY, ["hello bob"]);
  const { body, info } = await said;
  assert.deepEqual(body, [ra.playerId, "alice", "hello bob"]);
  assert.equal(info.type, SAID);
  // A game error comes back as a room error event.
  const err = nextEvent(ra, "error");
  ra.send(SAY, [""]);
  const e = await err;
  assert.equal(e.code, ErrorCode.BadRequest);
  assert.equal(e.ref, SAY);
});

test("requests fail with typed errors", async () => {
  const c = client();
  await assert.rejects(c.join("no-such-room"), (e) => e instanceof gs.GameserverError && e.code === ErrorCode.RoomNotFound && e.reqID > 0);
  await assert.rejects(c.joinOrCreate("no-such-kind"), (e) => e.code === ErrorCode.RoomNotFound);
  await assert.rejects(c.create("arena", { size: 1000 }), (e) => e.code === ErrorCode.InvalidOptions && e.codeName === "invalid_options");
  const room = await c.create("arena", { size: 1 });
  await assert.rejects(c.joinOrCreate("arena"), (e) => e.code === ErrorCode.AlreadyInRoom);
  const other = client();
  await assert.rejects(other.join(room.id), (e) => e.code === ErrorCode.RoomFull);
  // Over the server's message size: refused before sending (the server
  // would close the connection with 1009).
  assert.throws(() => room.send(ARENA_INPUT, ["x".repeat(70000)]), (e) => e.code === ErrorCode.TooLarge);
  assert.equal(c.state, "open");
  assert.throws(() => room.send(0x0003, []), RangeError, "system types cannot be sent as game messages");
});

test("heartbeat: the client measures its RTT, answers server pings and stays connected", async () => {
  const c = client();
  const rtt = nextEvent(c, "rtt");
  await c.connect();
  assert.ok((await rtt) > 0, "an RTT was measured");
  assert.ok(c.rtt > 0 && c.rtt < 1000, `rtt ${c.rtt}`);
  // The server pings every 300 ms and closes silent sessions after 600 ms;
  // the server reports its own measurement in its pings.
  await waitFor(() => c.serverRtt > 0, 3000, "the server measured an RTT from the client's pongs");
  const closed = [];
  c.on("reconnecting", (e) => closed.push(e));
  await sleep(1500);
  assert.deepEqual(closed, [], "no reconnection");
  assert.equal(c.state, "open");
});

test("heartbeat: the client's PONGs ack what it received; the server asks for an ack after 32 messages", async () => {
  // Server pings far apart: the PINGs seen here are the server asking for
  // an ack as its unacknowledged messages pile up (20 STATEs a second).
  const own = await startServer({ args: ["--ping-interval", "30s"] });
  const wire = wireRecorder(gs.webSocketTransport(WebSocketImpl));
  const c = newClient(own.wsUrl, { transport: wire.transport });
  try {
    await c.joinOrCreate("arena", { size: 4 });
    const pong = (min) => wire.log.some((e) => e.dir === "out" && e.msg?.type === gs.MsgType.Pong && e.msg.ack >= min);
    await waitFor(() => pong(32n), 5000, "a PONG acking 32 messages");
    await waitFor(() => pong(64n), 5000, "a PONG acking 64 messages");
    const pongs = checkPongAcks(wire.log);
    for (let i = 1; i < pongs.length; i++) assert.ok(pongs[i].ack >= pongs[i - 1].ack, "acks never go back");
    assert.equal(c.state, "open");
  } finally {
    c.close();
    await own.stop();
  }
});

test("the connect timeout and a refused connection reject with typed errors", async () => {
  const { createServer } = await import("node:net");
  // A server that accepts TCP and never answers the upgrade.
  const sockets = [];
  const mute = createServer((s) => sockets.push(s));
  await new Promise((r) => mute.listen(0, "127.0.0.1", r));
  const port = mute.address().port;
  try {
    const c = newClient(`ws://127.0.0.1:${port}/ws`, { connectTimeout: 300 });
    clients.push(c);
    const t0 = Date.now();
    await assert.rejects(c.connect(), (e) => e.code === ErrorCode.ConnectTimeout);
    const took = Date.now() - t0;
    assert.ok(took >= 280 && took < 2000, `took ${took} ms`);
    assert.equal(c.state, "idle");
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => mute.close(r));
  }
  const refused = newClient(`ws://127.0.0.1:${port}/ws`);
  await assert.rejects(refused.joinOrCreate("arena"), (e) => e.code === ErrorCode.ConnectFailed && e.closeCode === 1006);
  refused.close();
});

test("close() ends the session and rejects later requests", async () => {
  const c = client();
  const room = await c.joinOrCreate("arena");
  const leave = nextEvent(room, "leave");
  c.close();
  assert.equal(c.state, "closed");
  assert.equal((await leave).reason, "disconnected");
  await assert.rejects(c.getAvailableRooms(), (e) => e.code === ErrorCode.ClientClosed);
});
