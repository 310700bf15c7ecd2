// Session resume against real server processes: the network between the
// client and the server is cut (a TCP proxy destroys both sockets) while
// messages flow, and the server is restarted with SIGTERM (MOVE, 4002,
// then a resume the new process refuses).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GameServer, freePort, metric, startServer, waitFor, sleep } from "../helpers/server.mjs";
import { tcpProxy } from "../helpers/proxy.mjs";
import { gs, newClient, recorder } from "../helpers/client.mjs";

const { ARENA_INPUT } = gs;
const SAY = 0x1100, SAID = 0x1101;

/** Asserts that ticks go up by exactly one each time. */
function assertConsecutive(ticks) {
  assert.ok(ticks.length > 10, `${ticks.length} states`);
  for (let i = 1; i < ticks.length; i++) {
    if (ticks[i] !== ticks[i - 1] + 1n) assert.fail(`tick ${ticks[i - 1]} is followed by ${ticks[i]} (state ${i}): a state was lost or repeated`);
  }
}

test("cut while the arena streams: the session resumes, no state lost or repeated, every input received once", async () => {
  const srv = await startServer();
  const proxy = await tcpProxy(srv.port);
  const c = newClient(proxy.wsUrl, { minReconnectDelay: 50, maxReconnectDelay: 200 });
  try {
    const room = await c.joinOrCreate("arena", { size: 2 });
    const { id, playerId } = room;
    const ticks = [];
    room.onState(({ tick }) => ticks.push(tick));
    await sleep(10); // past the join's own "join" event
    const roomLog = recorder(room, ["reconnecting", "reconnected", "join", "leave"]);
    let sent = 0;
    let seq = 0;
    const sendInput = () => {
      if (room.send(ARENA_INPUT, [++seq, Math.cos(seq / 5), Math.sin(seq / 5)])) sent++;
    };
    const pump = setInterval(sendInput, 25);
    try {
      for (let cut = 1; cut <= 3; cut++) {
        await sleep(300 + Math.random() * 300);
        proxy.cut();
        await waitFor(() => c.state === "reconnecting", 3000, `reconnecting after cut ${cut}`);
        // An input sent while the connection is down waits for the resume.
        sendInput();
        sendInput();
        await waitFor(() => roomLog.filter((e) => e.event === "reconnected").length === cut, 5000, `resumed after cut ${cut}`);
      }
      await sleep(300);
    } finally {
      clearInterval(pump);
    }
    // Every input arrived once: the room counted as many as were sent.
    const me = await waitFor(() => {
      const p = room.state?.find((x) => x[0] === playerId);
      return p && p[4] === sent ? p : null;
    }, 5000, `the room received all ${sent} inputs`).catch(() => {
      assert.fail(`the room counted ${room.state?.find((x) => x[0] === playerId)?.[4]} inputs, ${sent} were sent`);
    });
    assert.equal(me[3], seq, "the last input applied is the last one sent");
    await sleep(200);
    assertConsecutive(ticks);
    for (const e of roomLog.filter((e) => e.event === "reconnected")) {
      assert.deepEqual(e.value, { resumed: true, roomChanged: false, previousRoomId: id, previousPlayerId: playerId });
    }
    assert.ok(!roomLog.some((e) => e.event === "join" || e.event === "leave"), "no re-join, no leave");
    assert.equal(room.id, id);
    assert.equal(room.playerId, playerId);
    assert.ok(proxy.accepted >= 4, "each cut made a new connection");
    assert.ok((await metric(srv, "gameserver_sessions_resumed_total")) >= 3);
    assert.equal(await metric(srv, "gameserver_sessions_resume_failed_total"), 0);
  } finally {
    c.close();
    await proxy.close();
    await srv.stop();
  }
});

test("chat across a cut: the resumed player misses nothing and its message sent while cut arrives once", async () => {
  const srv = await startServer();
  const proxy = await tcpProxy(srv.port);
  const a = newClient(proxy.wsUrl, { minReconnectDelay: 50, maxReconnectDelay: 200 });
  const b = newClient(srv.wsUrl);
  try {
    const ra = await a.create("chat", { name: "alice" });
    const rb = await b.join(ra.id, { name: "bob" });
    const atA = [];
    const atB = [];
    ra.onMessage(SAID, ([, name, text]) => atA.push(`${name}:${text}`));
    rb.onMessage(SAID, ([, name, text]) => atB.push(`${name}:${text}`));
    const presence = recorder(rb, ["presence"]);
    const alice = ra.playerId;
    const want = [];
    // Bob talks steadily; Alice's connection is cut in the middle of it.
    for (let i = 1; i <= 30; i++) {
      rb.send(SAY, [`b-${i}`]);
      want.push(`bob:b-${i}`);
      if (i === 10) {
        proxy.cut();
        await waitFor(() => a.state === "reconnecting", 3000, "alice reconnecting");
        assert.equal(ra.send(SAY, ["sent while cut"]), true);
        want.push("alice:sent while cut");
      }
      await sleep(15);
    }
    await waitFor(() => atA.length >= want.length && atB.length >= want.length, 5000, "every message at both ends");
    await sleep(200);
    const sorted = (xs) => [...xs].sort();
    assert.deepEqual(sorted(atA), sorted(want), "alice got each message once");
    assert.deepEqual(sorted(atB), sorted(want), "bob got each message once");
    assert.deepEqual(atA.filter((x) => x.startsWith("bob:")), want.filter((x) => x.startsWith("bob:")), "in order");
    assert.equal(ra.playerId, alice, "the same player");
    // Bob saw Alice drop and come back, never leave.
    const events = presence.filter((e) => e.value.playerId === alice).map((e) => e.value.event);
    assert.ok(!events.includes("leave"), JSON.stringify(events));
    assert.ok(events.includes("resume") || events.length === 0, JSON.stringify(events));
  } finally {
    a.close();
    b.close();
    await proxy.close();
    await srv.stop();
  }
});

test("SIGTERM restart: LEFT 503, MOVE, close 4002, one reconnection; the new process refuses the resume and the room is joined again", async () => {
  const port = await freePort();
  let srv = await new GameServer({ port }).start();
  const c = newClient(srv.wsUrl, { minReconnectDelay: 100, maxReconnectDelay: 500, moveJitter: 100 });
  let next;
  try {
    const room = await c.joinOrCreate("arena", { size: 3 });
    const { id, playerId } = room;
    const clientLog = recorder(c, ["move", "reconnecting", "reconnected", "disconnected"]);
    const roomLog = recorder(room, ["reconnecting", "reconnected", "leave"]);
    await srv.stop(); // SIGTERM: the server shuts down, telling the client to come back
    next = await new GameServer({ port }).start();
    const ev = await waitFor(() => roomLog.find((e) => e.event === "reconnected"), 10000, "room reconnected");
    assert.deepEqual(ev.value, { resumed: false, roomChanged: true, previousRoomId: id, previousPlayerId: playerId });
    assert.notEqual(room.playerId, playerId);
    assert.ok(!roomLog.some((e) => e.event === "leave"), "LEFT 503 did not end the room");
    const move = clientLog.find((e) => e.event === "move");
    assert.ok(move, `a MOVE: ${JSON.stringify(clientLog.map((e) => e.event))}`);
    assert.equal(move.value.url, srv.wsUrl, "an empty MOVE url is the same server");
    const reconnecting = clientLog.filter((e) => e.event === "reconnecting");
    assert.equal(reconnecting[0].value.closeCode, 4002);
    assert.ok(reconnecting[0].at >= move.at);
    assert.ok(Math.abs(reconnecting[0].value.delay - (move.value.delay - (reconnecting[0].at - move.at))) < 100, "the MOVE's delay");
    assert.equal(reconnecting.filter((e) => e.value.closeCode === 4002).length, 1, "the close after MOVE did not schedule a second reconnection");
    assert.equal(clientLog.find((e) => e.event === "reconnected").value.resumed, false);
    assert.ok(!clientLog.some((e) => e.event === "disconnected"));
    assert.ok((await metric(next, "gameserver_sessions_resume_failed_total")) >= 1, "the client tried to resume first");
    const listed = (await c.getAvailableRooms("arena")).find((r) => r.roomId === room.id);
    assert.equal(listed.maxPlayers, 3, "joined again with the same options");
    room.send(ARENA_INPUT, [1, 1, 0]);
    await waitFor(() => room.state?.find((p) => p[0] === room.playerId)?.[3] === 1, 3000, "playing again");
  } finally {
    c.close();
    await srv.kill();
    await next?.stop();
  }
});
