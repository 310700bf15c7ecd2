// Session resume and MOVE against a scripted server: sequence counting,
// acks, what is re-sent after RESUMED, refusals, and moves with and
// without the server's close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fakeServer } from "../helpers/fake.mjs";
import { waitFor, sleep } from "../helpers/server.mjs";
import { gs, newClient, nextEvent, recorder } from "../helpers/client.mjs";

const { MsgType, ErrorCode } = gs;
const GAME = 0x1200; // server → client, numbered
const INPUT = 0x1300; // client → server

async function scenario(script, clientOpts, fn) {
  const fake = await fakeServer(script);
  const c = newClient(fake.url, { minReconnectDelay: 50, maxReconnectDelay: 200, ...clientOpts });
  try {
    await fn(c, fake);
  } finally {
    c.close();
    await fake.close();
  }
  for (const conn of fake.conns) if (conn.error) throw conn.error;
}

const game = (n) => ({ type: GAME, body: gs.encodeValue([n]) });
const inputs = (conn) => conn.received.filter((m) => m.type === INPUT).map((m) => gs.decodeValue(m.body)[0]);

test("a dropped connection is resumed: same room and player, nothing lost or repeated either way", async () => {
  let release;
  const released = new Promise((r) => (release = r));
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin({ roomID: "r-1" }); // server seq 1; the JOIN is client seq 1
        for (let i = 1; i <= 3; i++) conn.send(game(i)); // server seq 2..4
        await waitFor(() => inputs(conn).length === 2, 3000, "two inputs"); // client seq 2, 3
        conn.ws.terminate(); // no close frame: 1006
        return;
      }
      const resume = await conn.first();
      conn.resume = resume;
      await released;
      // The server got the JOIN and input "a" (client seq 2) but not "b".
      conn.send({ type: MsgType.Resumed, sessionID: "s-1", fromSeq: resume.lastSeq + 1n, clientSeq: 2n, resumeToken: "rt-2" });
      for (let i = 4; i <= 6; i++) conn.send(game(i));
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const got = [];
      room.onMessage(GAME, ([n]) => got.push(n));
      await waitFor(() => got.length === 3, 3000, "three messages");
      const roomLog = recorder(room, ["reconnecting", "reconnected", "join", "leave"]);
      const clientLog = recorder(c, ["reconnected", "open"]);
      assert.equal(room.send(INPUT, ["a"]), true);
      assert.equal(room.send(INPUT, ["b"]), true);
      await waitFor(() => c.state === "reconnecting", 3000, "reconnecting");
      // Sent while the connection is down: delivered after the resume.
      assert.equal(room.send(INPUT, ["c"]), true);
      await waitFor(() => fake.conns[1]?.resume, 3000, "RESUME");
      const resume = fake.conns[1].resume;
      assert.equal(resume.type, MsgType.Resume);
      assert.equal(resume.sessionID, "s-1");
      assert.equal(resume.resumeToken, "rt-1");
      assert.equal(resume.lastSeq, 4n, "JOINED and three game messages received");
      assert.equal(fake.conns[1].url, "/ws?session=s-1");
      release();
      await waitFor(() => got.length === 6, 3000, "six messages");
      assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
      // Re-sent after clientSeq 2, in order, each once; "a" is not repeated.
      await waitFor(() => inputs(fake.conns[1]).length === 2, 3000, "re-sent inputs");
      await sleep(100);
      assert.deepEqual(inputs(fake.conns[1]), ["b", "c"]);
      assert.ok(!fake.conns[1].received.some((m) => m.type === MsgType.Join || m.type === MsgType.Hello), "no HELLO, no re-join");
      const ev = roomLog.find((e) => e.event === "reconnected");
      assert.deepEqual(ev.value, { resumed: true, roomChanged: false, previousRoomId: "r-1", previousPlayerId: "p-1" });
      assert.equal(room.playerId, "p-1");
      assert.ok(!roomLog.some((e) => e.event === "join" || e.event === "leave"));
      assert.equal(clientLog.find((e) => e.event === "reconnected").value.resumed, true);
      assert.ok(!clientLog.some((e) => e.event === "open" && e.value.sessionId !== "s-1"), "no new session");
      assert.equal(c.state, "open");
      assert.equal(c.session.sessionId, "s-1");
      // The next resume uses the token RESUMED gave.
      fake.conns[1].ws.terminate();
      await waitFor(() => fake.conns[2]?.received.length > 0, 3000, "third connection");
      assert.equal(fake.conns[2].received[0].resumeToken, "rt-2");
      assert.equal(fake.conns[2].received[0].lastSeq, 7n);
    },
  );
});

test("the client counts sequenced messages and acks them in its PINGs, early when many arrive", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake({ resumeToken: "rt" });
      await conn.acceptJoin(); // 1
      await conn.next(MsgType.Ping);
      conn.send(game(1)); // 2
      conn.send({ type: MsgType.Ping, nonce: 7, rttUs: 0, ack: 0n }); // not sequenced
      conn.send({ type: MsgType.State, tick: 1n, serverTimeNs: 0n, body: null }); // 3
      conn.send({ type: MsgType.Presence, roomID: "r-1", event: 0, playerID: "p-x" }); // 4
      conn.send({ type: MsgType.Error, code: 1001, message: "game says no", ref: INPUT, reqID: 0 }); // 5
      conn.sendRaw(new Uint8Array([0x0f, 0xff, 0x90])); // unknown type: counts too (6)
      conn.send({ type: MsgType.Kick, code: 0, reason: "not really" }); // not sequenced
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const errors = recorder(room, ["error"]);
      const conn = fake.conns[0];
      await waitFor(() => errors.length === 2, 3000, "the game error and the unknown type");
      // Five messages since the last PING (well under 200): acked within ~2 s.
      const t0 = Date.now();
      const ping = await waitFor(() => conn.received.find((m) => m.type === MsgType.Ping && m.ack > 0n), 4000, "an acking PING");
      assert.equal(ping.ack, 6n);
      assert.ok(Date.now() - t0 < 3500);
      // Many at once: acked at the 200th, long before the next interval.
      for (let i = 0; i < 250; i++) conn.send(game(i));
      const early = await waitFor(() => conn.received.find((m) => m.type === MsgType.Ping && m.ack >= 206n), 1500, "an early ack");
      assert.ok(early.ack <= 256n);
    },
  );
});

test("the server's PING ack releases what it acknowledges: a resume re-sends only later messages", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin();
        await waitFor(() => inputs(conn).length === 3, 3000, "three inputs");
        conn.send({ type: MsgType.Ping, nonce: 1, rttUs: 0, ack: 4n }); // JOIN + 3 inputs
        await conn.next(MsgType.Pong);
        await waitFor(() => inputs(conn).length === 4, 3000, "the fourth input");
        conn.ws.terminate();
        return;
      }
      const r = await conn.first();
      // Says less than it acked: what the ack released is not re-sent.
      conn.send({ type: MsgType.Resumed, sessionID: r.sessionID, fromSeq: r.lastSeq + 1n, clientSeq: 1n, resumeToken: "rt-2" });
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      for (const x of ["a", "b", "c"]) room.send(INPUT, [x]);
      await waitFor(() => fake.conns[0].received.some((m) => m.type === MsgType.Pong), 3000, "pong");
      room.send(INPUT, ["d"]);
      await nextEvent(room, "reconnected", 3000);
      await sleep(100);
      assert.deepEqual(inputs(fake.conns[1]), ["d"]);
    },
  );
});

test("the client's PONG acks the sequenced messages it received, as its PINGs do", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake({ resumeToken: "rt" });
      conn.send({ type: MsgType.Ping, nonce: 1, rttUs: 0, ack: 0n }); // nothing received yet
      await conn.acceptJoin(); // 1
      // The server asks for an ack after a run of messages, in the same write.
      for (let i = 1; i <= 40; i++) conn.send(game(i)); // 2..41
      conn.send({ type: MsgType.Ping, nonce: 2, rttUs: 0, ack: 0n });
      conn.send({ type: MsgType.State, tick: 1n, serverTimeNs: 0n, body: null }); // 42
      conn.sendRaw(new Uint8Array([0x0f, 0xff, 0x90])); // unknown type: counts too (43)
      conn.send({ type: MsgType.Kick, code: 0, reason: "not really" }); // not sequenced
      conn.send({ type: MsgType.Ping, nonce: 3, rttUs: 0, ack: 0n });
    },
    {},
    async (c, fake) => {
      await c.joinOrCreate("arena");
      const conn = fake.conns[0];
      const pongs = await waitFor(() => {
        const p = conn.received.filter((m) => m.type === MsgType.Pong);
        return p.length === 3 && p;
      }, 3000, "three PONGs");
      assert.deepEqual(pongs.map((m) => [m.nonce, m.ack]), [[1, 0n], [2, 41n], [3, 43n]]);
      // Like a PING's, a PONG's ack counts as sent: no PING follows to ack
      // the same messages again.
      await sleep(2500);
      const pings = conn.received.filter((m) => m.type === MsgType.Ping);
      assert.ok(!pings.some((m) => m.ack > 0n), `acked again in PINGs: ${pings.map((m) => m.ack)}`);
    },
  );
});

test("the server's PONG ack releases what it acknowledges, as its PING ack does", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        conn.autoPong = false;
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        const ping = await conn.next(MsgType.Ping); // the client's first, at WELCOME
        await conn.acceptJoin();
        await waitFor(() => inputs(conn).length === 3, 3000, "three inputs");
        conn.send({ type: MsgType.Pong, nonce: ping.nonce, ack: 4n }); // JOIN + 3 inputs
        await waitFor(() => inputs(conn).length === 4, 3000, "the fourth input");
        conn.ws.terminate();
        return;
      }
      const r = await conn.first();
      // Says less than it acked: what the ack released is not re-sent.
      conn.send({ type: MsgType.Resumed, sessionID: r.sessionID, fromSeq: r.lastSeq + 1n, clientSeq: 1n, resumeToken: "rt-2" });
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const rtt = nextEvent(c, "rtt", 3000); // the PONG handled
      for (const x of ["a", "b", "c"]) room.send(INPUT, [x]);
      await rtt;
      room.send(INPUT, ["d"]);
      await nextEvent(room, "reconnected", 3000);
      await sleep(100);
      assert.deepEqual(inputs(fake.conns[1]), ["d"]);
    },
  );
});

test("a request in flight survives a resume: the JOIN is re-sent and answered", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.next(MsgType.Join); // never answered here
        conn.ws.terminate();
        return;
      }
      const r = await conn.first();
      conn.send({ type: MsgType.Resumed, sessionID: r.sessionID, fromSeq: 1n, clientSeq: 0n, resumeToken: "rt-2" });
      await conn.acceptJoin({ roomID: "r-late" });
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      assert.equal(room.id, "r-late");
      assert.equal(fake.conns.length, 2);
      assert.equal(fake.conns[1].received.filter((m) => m.type === MsgType.Join).length, 1);
    },
  );
});

test("RESUME refused (412): a new session on the same connection, the room joined again, waiting requests fail", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin({ roomID: "r-1" });
        await conn.next(MsgType.List); // never answered
        conn.ws.terminate();
        return;
      }
      const r = await conn.first();
      assert.equal(r.type, MsgType.Resume);
      conn.send({ type: MsgType.Error, code: 412, message: "session cannot be resumed: start a new one with hello", ref: MsgType.Resume, reqID: 0 });
      await conn.handshake({ sessionID: "s-2", resumeToken: "rt-new" });
      await conn.acceptJoin({ roomID: "r-1", playerID: "p-new" });
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const listing = c.getAvailableRooms();
      const log = recorder(room, ["reconnected", "leave", "error"]);
      const clientLog = recorder(c, ["reconnected", "error"]);
      await waitFor(() => c.state === "reconnecting", 3000, "reconnecting");
      room.send(INPUT, ["queued in the old session"]);
      await assert.rejects(listing, (e) => e.code === ErrorCode.ConnectionLost && /resumed/.test(e.message));
      const ev = await waitFor(() => log.find((e) => e.event === "reconnected"), 3000, "reconnected");
      assert.deepEqual(ev.value, { resumed: false, roomChanged: false, previousRoomId: "r-1", previousPlayerId: "p-1" });
      assert.equal(room.playerId, "p-new");
      assert.equal(fake.conns.length, 2, "HELLO went on the same connection");
      const types = fake.conns[1].received.map((m) => m.type).filter((t) => t !== MsgType.Ping && t !== MsgType.Pong);
      assert.deepEqual(types.slice(0, 3), [MsgType.Resume, MsgType.Hello, MsgType.Join]);
      assert.deepEqual(inputs(fake.conns[1]), [], "the old session's messages are dropped");
      assert.equal(clientLog.find((e) => e.event === "reconnected").value.resumed, false);
      assert.deepEqual([...log, ...clientLog].filter((e) => e.event === "error" || e.event === "leave"), []);
    },
  );
});

test("RESUME refused with 401: the close that follows is terminal, no new session", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin();
        await conn.next(MsgType.Ping);
        conn.ws.terminate();
        return;
      }
      await conn.first();
      conn.send({ type: MsgType.Error, code: 401, message: "token expired", ref: MsgType.Resume, reqID: 0 });
      conn.close(4500, "unauthorized");
    },
    { token: () => "tok" },
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const d = await nextEvent(room, "disconnected", 3000);
      assert.equal(d.closeCode, 4500);
      assert.equal(d.error.code, ErrorCode.Unauthorized);
      assert.equal(fake.conns[1].received.find((m) => m.type === MsgType.Resume).token, "tok", "RESUME carries the token");
      assert.ok(!fake.conns[1].received.some((m) => m.type === MsgType.Hello));
      await sleep(300);
      assert.equal(fake.conns.length, 2);
    },
  );
});

test("MOVE without a close: after the delay the client leaves the connection itself (4002) and resumes, once", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin();
        await conn.next(MsgType.Ping);
        conn.send({ type: MsgType.Move, url: "", resumeToken: "", delayMs: 100 }); // no token: keep the one from WELCOME
        return; // and never close
      }
      const r = await conn.first();
      conn.resume = r;
      conn.send({ type: MsgType.Resumed, sessionID: r.sessionID, fromSeq: r.lastSeq + 1n, clientSeq: 1n, resumeToken: "rt-2" });
    },
    { moveJitter: 100 },
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const log = recorder(c, ["move", "reconnecting", "reconnected"]);
      const closed = await fake.conns[0].closed;
      assert.equal(closed.code, 4002, "the client closed the old connection");
      const move = log.find((e) => e.event === "move");
      assert.ok(move.value.delay >= 100 && move.value.delay <= 200, `delay ${move.value.delay}`);
      await waitFor(() => log.some((e) => e.event === "reconnected"), 3000, "reconnected");
      await sleep(400);
      assert.equal(fake.conns.length, 2, "one reconnection");
      assert.equal(log.filter((e) => e.event === "reconnecting").length, 1);
      assert.equal(fake.conns[1].resume.resumeToken, "rt-1");
      assert.equal(room.playerId, "p-1");
    },
  );
});

test("MOVE, then the server's close 4002: one reconnection, after the MOVE's delay", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        await conn.handshake({ sessionID: "s-1", resumeToken: "rt-1" });
        await conn.acceptJoin();
        await conn.next(MsgType.Ping);
        conn.send({ type: MsgType.Move, url: "", resumeToken: "rt-moved", delayMs: 300 });
        await sleep(30);
        conn.close(4002, "moved: reconnect and resume");
        return;
      }
      const r = await conn.first();
      conn.resume = r;
      conn.send({ type: MsgType.Resumed, sessionID: r.sessionID, fromSeq: r.lastSeq + 1n, clientSeq: 1n, resumeToken: "rt-2" });
    },
    { moveJitter: 0, drainDelay: 50, minReconnectDelay: 10 },
    async (c, fake) => {
      await c.joinOrCreate("arena");
      const t0 = Date.now();
      const log = recorder(c, ["reconnecting", "reconnected"]);
      await waitFor(() => log.some((e) => e.event === "reconnected"), 3000, "reconnected");
      assert.ok(Date.now() - t0 >= 250, "waited for the MOVE's delay, not the drain delay");
      await sleep(500);
      assert.equal(fake.conns.length, 2);
      assert.equal(log.filter((e) => e.event === "reconnecting").length, 1);
      assert.equal(log[0].value.closeCode, 4002);
      assert.equal(fake.conns[1].resume.resumeToken, "rt-moved");
    },
  );
});

test("resume: false always starts a new session", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake({ resumeToken: "rt" });
      if (conn.index === 1) {
        await conn.acceptJoin({ roomID: "r-1" });
        await conn.next(MsgType.Ping);
        conn.ws.terminate();
        return;
      }
      await conn.acceptJoin({ roomID: "r-1" });
    },
    { resume: false },
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      await waitFor(() => c.state === "reconnecting", 3000, "reconnecting");
      assert.equal(room.send(INPUT, ["x"]), false, "nothing to send to while reconnecting without resume");
      const ev = await nextEvent(room, "reconnected", 3000);
      assert.equal(ev.resumed, false);
      assert.equal(fake.conns[1].received[0].type, MsgType.Hello);
    },
  );
});
