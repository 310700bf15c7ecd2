// Close codes, heartbeats and edge cases against a scripted server that
// speaks the real protocol over real WebSockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fakeServer } from "../helpers/fake.mjs";
import { waitFor, sleep } from "../helpers/server.mjs";
import { gs, newClient, nextEvent, recorder } from "../helpers/client.mjs";

const { MsgType, ErrorCode, JoinMode } = gs;

/** Runs fn with a fake server and a client of it; both are closed after. */
async function scenario(script, clientOpts, fn) {
  const fake = await fakeServer(script);
  const c = newClient(fake.url, { minReconnectDelay: 50, maxReconnectDelay: 200, ...clientOpts });
  try {
    await fn(c, fake);
  } finally {
    c.close();
    await fake.close();
  }
}

test("a server PING is answered at once with the same nonce", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      conn.autoPong = true;
    },
    {},
    async (c, fake) => {
      await c.connect();
      const conn = fake.conns[0];
      const sentAt = Date.now();
      conn.send({ type: MsgType.Ping, nonce: 4242, rttUs: 1500, ack: 0n });
      const pong = await conn.next(MsgType.Pong, 2000);
      assert.equal(pong.nonce, 4242);
      assert.ok(pong.at - sentAt < 100, `answered after ${pong.at - sentAt} ms`);
      assert.equal(c.serverRtt, 1.5);
      // The client's own first PING went out right after WELCOME.
      const ping = await conn.next(MsgType.Ping, 2000);
      assert.ok(ping.nonce > 0);
    },
  );
});

for (const [code, what] of [
  [4500, "unauthorized"],
  [4501, "unsupported version"],
  [4502, "kicked"],
  [1009, "message too big"],
]) {
  test(`close ${code} (${what}) is terminal: no reconnection, a typed error`, async () => {
    await scenario(
      async (conn) => {
        await conn.handshake();
        await conn.acceptJoin();
        await conn.next(MsgType.Ping);
        if (code === 4500) conn.send({ type: MsgType.Error, code: 401, message: "token expired", ref: 0, reqID: 0 });
        if (code === 4502) conn.send({ type: MsgType.Kick, code: 1403, reason: "cheating" });
        conn.close(code, what);
      },
      {},
      async (c, fake) => {
        const room = await c.joinOrCreate("arena");
        const disconnected = nextEvent(room, "disconnected");
        const errors = recorder(room, ["error"]);
        const reconnecting = recorder(c, ["reconnecting"]);
        const ev = await disconnected;
        assert.equal(ev.closeCode, code);
        assert.ok(ev.error instanceof gs.GameserverError);
        assert.equal(ev.error.closeCode, code);
        const want = { 4500: ErrorCode.Unauthorized, 4501: ErrorCode.UnsupportedVersion, 4502: 1403, 1009: ErrorCode.TooLarge }[code];
        assert.equal(ev.error.code, want);
        if (code === 4500) assert.match(ev.error.message, /token expired/);
        await sleep(600); // several backoff periods
        assert.equal(fake.conns.length, 1, "no second connection");
        assert.equal(reconnecting.length, 0);
        assert.equal(c.state, "idle");
        assert.equal(room.joined, false);
        assert.equal(errors.length, 1, "the error was surfaced on the room");
      },
    );
  });
}

test("close 4001 reconnects and re-joins the room by ID", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin({ roomID: "r-7" });
      if (conn.index === 1) {
        await conn.next(MsgType.Ping);
        conn.close(4001, "slow consumer");
      }
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("arena", { size: 3 });
      const reconnecting = nextEvent(room, "reconnecting");
      const reconnected = nextEvent(room, "reconnected");
      const r = await reconnecting;
      assert.equal(r.closeCode, 4001);
      assert.ok(r.delay >= 50 && r.delay <= 200, `delay ${r.delay}`);
      const ev = await reconnected;
      assert.equal(fake.conns.length, 2);
      const rejoin = fake.conns[1].received.find((m) => m.type === MsgType.Join);
      assert.equal(rejoin.mode, JoinMode.JoinById);
      assert.equal(rejoin.roomID, "r-7");
      assert.deepEqual(ev, { resumed: false, roomChanged: false, previousRoomId: "r-7", previousPlayerId: "p-1" });
      assert.equal(room.playerId, "p-2");
      const hello = fake.conns[1].received.find((m) => m.type === MsgType.Hello);
      assert.equal(hello.version, 1);
      assert.match(hello.client, /^gameserver-js\//);
    },
  );
});

test("a room gone after a reconnect falls back to joinOrCreate of the same kind and options", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      if (conn.index === 1) {
        await conn.acceptJoin({ roomID: "r-old", kind: "chat" });
        await conn.next(MsgType.Ping);
        conn.ws.terminate(); // no close frame: 1006
        return;
      }
      const byId = await conn.next(MsgType.Join);
      conn.send({ type: MsgType.Error, code: 404, message: "room r-old not found", ref: MsgType.Join, reqID: byId.reqID });
      await conn.acceptJoin({ roomID: "r-new", kind: "chat" });
    },
    {},
    async (c, fake) => {
      const room = await c.joinOrCreate("chat", { name: "carol" });
      const ev = await nextEvent(room, "reconnected");
      assert.equal(ev.roomChanged, true);
      assert.equal(room.id, "r-new");
      const joins = fake.conns[1].received.filter((m) => m.type === MsgType.Join);
      assert.equal(joins.length, 2);
      assert.equal(joins[1].mode, JoinMode.JoinOrCreate);
      assert.equal(joins[1].kind, "chat");
      assert.deepEqual(gs.decodeValue(joins[1].options), { name: "carol" });
    },
  );
});

test("a re-join refused for another reason ends the room with rejoin_failed", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      if (conn.index === 1) {
        await conn.acceptJoin({ roomID: "r-1" });
        await conn.next(MsgType.Ping);
        conn.close(4000, "heartbeat timeout");
        return;
      }
      const j = await conn.next(MsgType.Join);
      conn.send({ type: MsgType.Error, code: 403, message: "banned from this room", ref: MsgType.Join, reqID: j.reqID });
    },
    {},
    async (c) => {
      const room = await c.joinOrCreate("arena");
      const errors = recorder(room, ["error"]);
      const leave = await nextEvent(room, "leave");
      assert.equal(leave.reason, "rejoin_failed");
      assert.equal(leave.code, ErrorCode.Forbidden);
      assert.equal(leave.error.code, ErrorCode.RejoinFailed);
      assert.equal(errors.length, 1);
      assert.equal(c.state, "open", "the session itself is fine");
    },
  );
});

test("silence for pingInterval + pingTimeout is a dead connection: the client reconnects", async () => {
  await scenario(
    async (conn) => {
      if (conn.index === 1) {
        conn.autoPong = false; // say nothing after WELCOME
        await conn.handshake({ pingIntervalMs: 150, pingTimeoutMs: 150 });
        return;
      }
      await conn.handshake();
    },
    {},
    async (c, fake) => {
      await c.connect();
      const t0 = Date.now();
      const r = await nextEvent(c, "reconnecting", 3000);
      const took = Date.now() - t0;
      assert.equal(r.closeCode, gs.CloseCode.HeartbeatTimeout);
      assert.ok(took >= 250 && took < 1500, `detected after ${took} ms`);
      await nextEvent(c, "reconnected", 3000);
      assert.equal(fake.conns.length, 2);
      const closed = await fake.conns[0].closed;
      assert.equal(closed.code, 4000, "the client closed the dead connection with 4000");
    },
  );
});

test("4002 waits a jittered delay within [minReconnectDelay, drainDelay]", async () => {
  const delays = [];
  for (let i = 0; i < 3; i++) {
    await scenario(
      async (conn) => {
        await conn.handshake();
        if (conn.index === 1) conn.close(4002, "server restarting");
      },
      { minReconnectDelay: 100, drainDelay: 400 },
      async (c) => {
        await c.connect();
        const r = await nextEvent(c, "reconnecting");
        assert.equal(r.closeCode, 4002);
        delays.push(r.delay);
        const t0 = Date.now();
        await nextEvent(c, "reconnected");
        assert.ok(Date.now() - t0 >= r.delay - 20, "waited the delay");
      },
    );
  }
  for (const d of delays) assert.ok(d >= 100 && d <= 400, `delay ${d}`);
  assert.ok(new Set(delays).size > 1, "delays are jittered");
});

test("the first connection failing rejects the request instead of retrying", async () => {
  await scenario(
    async (conn) => {
      await conn.next(MsgType.Hello);
      conn.send({ type: MsgType.Error, code: 401, message: "token signature invalid", ref: MsgType.Hello, reqID: 0 });
      conn.close(4500, "unauthorized");
    },
    { token: () => "bad-token" },
    async (c, fake) => {
      await assert.rejects(c.joinOrCreate("arena"), (e) => e.code === ErrorCode.Unauthorized && e.closeCode === 4500 && /signature/.test(e.message));
      const hello = fake.conns[0].received[0];
      assert.equal(hello.token, "bad-token");
      await sleep(300);
      assert.equal(fake.conns.length, 1);
    },
  );
});

test("LEFT (disposed) ends the room at once", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin({ roomID: "r-1" });
      await conn.next(MsgType.Ping);
      conn.send({ type: MsgType.Left, roomID: "r-1", reason: 2, code: 0 });
    },
    {},
    async (c) => {
      const room = await c.joinOrCreate("arena");
      const t0 = Date.now();
      const leave = await nextEvent(room, "leave", 3000);
      assert.deepEqual(leave, { reason: "disposed", code: 0 });
      assert.ok(Date.now() - t0 < 500, `ended after ${Date.now() - t0} ms`);
      assert.equal(c.currentRoom, null);
    },
  );
});

test("LEFT with 503 (server shutting down) keeps the room: it is joined again after the reconnect", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      if (conn.index === 1) {
        await conn.acceptJoin({ roomID: "r-1", kind: "chat" });
        await conn.next(MsgType.Ping);
        conn.send({ type: MsgType.Left, roomID: "r-1", reason: 2, code: 503 });
        await sleep(50);
        conn.close(4002, "server restarting");
        return;
      }
      const byId = await conn.next(MsgType.Join);
      assert.equal(byId.roomID, "r-1");
      conn.send({ type: MsgType.Error, code: 404, message: "room r-1 not found", ref: MsgType.Join, reqID: byId.reqID });
      await conn.acceptJoin({ roomID: "r-2", kind: "chat" });
    },
    { drainDelay: 100 },
    async (c, fake) => {
      const room = await c.joinOrCreate("chat", { name: "erin" });
      const log = recorder(room, ["leave", "reconnecting", "reconnected"]);
      assert.equal(room.send(0x1100, ["lost"]), true);
      await waitFor(() => log.some((e) => e.event === "reconnecting"), 3000, "reconnecting");
      assert.equal(room.send(0x1100, ["meanwhile"]), false, "the room is being joined again: nothing to send to");
      const ev = await waitFor(() => log.find((e) => e.event === "reconnected"), 3000, "reconnected");
      assert.deepEqual(ev.value, { resumed: false, roomChanged: true, previousRoomId: "r-1", previousPlayerId: "p-1" });
      assert.ok(!log.some((e) => e.event === "leave"), "the room did not end");
      assert.equal(room.id, "r-2");
      assert.equal(fake.conns.length, 2);
      assert.equal(fake.conns[1].received.filter((m) => m.type === MsgType.Join).length, 2);
    },
  );
});

test("LEFT with 503 and no close: the room is joined again on the same session after a jittered delay", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin({ roomID: "r-1" });
      await conn.next(MsgType.Ping);
      conn.send({ type: MsgType.Left, roomID: "r-1", reason: 2, code: 503 });
      const j = await conn.next(MsgType.Join);
      assert.equal(j.roomID, "r-1");
      conn.send({ type: MsgType.Joined, reqID: j.reqID, roomID: "r-1", kind: "arena", playerID: "p-9", tickRate: 20 });
    },
    { minReconnectDelay: 100, drainDelay: 200 },
    async (c, fake) => {
      const room = await c.joinOrCreate("arena");
      const t0 = Date.now();
      const ev = await nextEvent(room, "reconnected", 3000);
      assert.ok(Date.now() - t0 >= 90, "waited before coming back");
      assert.deepEqual(ev, { resumed: false, roomChanged: false, previousRoomId: "r-1", previousPlayerId: "p-1" });
      assert.equal(room.playerId, "p-9");
      assert.equal(fake.conns.length, 1);
      assert.equal(c.state, "open");
    },
  );
});

test("LEFT (kicked) ends the room at once with the game's code", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin({ roomID: "r-1" });
      await conn.next(MsgType.Ping);
      conn.send({ type: MsgType.Left, roomID: "r-1", reason: 1, code: 1001 });
    },
    {},
    async (c) => {
      const room = await c.joinOrCreate("arena");
      const leave = await nextEvent(room, "leave", 1000);
      assert.deepEqual(leave, { reason: "kicked", code: 1001 });
    },
  );
});

test("malformed server messages are reported, not fatal", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin();
      await conn.next(MsgType.Ping);
      conn.sendRaw(new Uint8Array([0x00, 0x11, 0x81])); // truncated map
      conn.sendRaw(Buffer.from("text frame").toString()); // a text frame
      conn.send({ type: 0x1001, body: gs.encodeValue({ ok: true }) });
    },
    {},
    async (c) => {
      const room = await c.joinOrCreate("arena");
      const errors = recorder(room, ["error"]);
      const msg = await new Promise((resolve) => room.onMessage(0x1001, resolve));
      assert.deepEqual(msg, { ok: true });
      await waitFor(() => errors.length === 2, 2000, "two errors");
      for (const e of errors) assert.equal(e.value.code, ErrorCode.BadServerMessage);
      assert.equal(c.state, "open");
    },
  );
});

test("a request without an answer times out; a late JOINED is left", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      const j = await conn.next(MsgType.Join);
      await sleep(400);
      conn.send({ type: MsgType.Joined, reqID: j.reqID, roomID: "r-late", kind: "arena", playerID: "p", tickRate: 20 });
    },
    { requestTimeout: 200 },
    async (c, fake) => {
      await assert.rejects(c.joinOrCreate("arena"), (e) => e.code === ErrorCode.RequestTimeout);
      const leave = await fake.conns[0].next(MsgType.Leave, 2000);
      assert.ok(leave.reqID > 0);
      assert.equal(c.currentRoom, null);
    },
  );
});

test("game messages before a handler is registered are held for it", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      await conn.acceptJoin();
      for (let i = 0; i < 3; i++) conn.send({ type: 0x1200, body: gs.encodeValue([i]) });
      conn.send({ type: MsgType.State, tick: 9n, serverTimeNs: 1_700_000_000_123_456_789n, body: gs.encodeValue([["p-1", 1, 2, 3]]) });
    },
    {},
    async (c) => {
      const room = await c.joinOrCreate("arena");
      await sleep(200); // everything arrived before any handler exists
      const got = [];
      room.onMessage(0x1200, (b) => got.push(b[0]));
      const state = await new Promise((resolve) => room.onState(resolve));
      assert.deepEqual(got, [0, 1, 2]);
      assert.equal(state.tick, 9n);
      assert.equal(state.serverTimeNs, 1_700_000_000_123_456_789n);
      assert.equal(state.serverTime, 1_700_000_000_123.456);
      assert.deepEqual(state.body, [["p-1", 1, 2, 3]]);
    },
  );
});

test("close() while reconnecting stops the reconnection", async () => {
  await scenario(
    async (conn) => {
      await conn.handshake();
      conn.close(4001, "slow consumer");
    },
    { minReconnectDelay: 300, maxReconnectDelay: 300 },
    async (c, fake) => {
      await c.connect();
      await nextEvent(c, "reconnecting");
      const disconnected = nextEvent(c, "disconnected");
      c.close();
      assert.equal((await disconnected).closeCode, 1000);
      await sleep(700);
      assert.equal(fake.conns.length, 1, "no new connection after close()");
      assert.equal(c.state, "closed");
    },
  );
});

test("MOVE then a close: reconnect after its delay, to its URL or the same one, and resume there with its token", async () => {
  // The node a MOVE sends the client to answers its RESUME.
  const resumeThere = async (conn) => {
    const m = await conn.first();
    assert.equal(m.type, MsgType.Resume);
    conn.resume = m;
    conn.send({ type: MsgType.Resumed, sessionID: m.sessionID, fromSeq: m.lastSeq + 1n, clientSeq: 1n, resumeToken: "rt-next" });
  };
  const other = await fakeServer(resumeThere);
  try {
    for (const target of ["", other.url]) {
      await scenario(
        async (conn) => {
          if (conn.index > 1) return resumeThere(conn);
          await conn.handshake({ sessionID: "s-moving", resumeToken: "rt-welcome" });
          await conn.acceptJoin({ roomID: "r-9" });
          await conn.next(MsgType.Ping);
          conn.send({ type: MsgType.Move, url: target, resumeToken: "rt-move", delayMs: 150 });
          conn.close(4002, "draining");
        },
        { drainDelay: 5000, minReconnectDelay: 50, moveJitter: 0 },
        async (c, fake) => {
          const room = await c.joinOrCreate("arena");
          const moved = nextEvent(c, "move");
          const r = await nextEvent(room, "reconnecting");
          assert.equal((await moved).delay, 150);
          assert.ok(r.delay > 100 && r.delay <= 150, `the MOVE's delay, not the drain delay: ${r.delay}`);
          const ev = await nextEvent(room, "reconnected", 3000);
          assert.deepEqual(ev, { resumed: true, roomChanged: false, previousRoomId: "r-9", previousPlayerId: "p-1" });
          const there = target ? other.conns.at(-1) : fake.conns[1];
          assert.equal(there.resume.sessionID, "s-moving");
          assert.equal(there.resume.resumeToken, "rt-move", "the MOVE's token");
          assert.equal(there.url, "/ws?session=s-moving", "the session is named in the URL");
          if (target) {
            assert.equal(c.url, other.url);
            assert.equal(fake.conns.length, 1);
          } else {
            assert.equal(fake.conns.length, 2);
          }
        },
      );
    }
    assert.equal(other.conns.length, 1);
  } finally {
    await other.close();
  }
});
