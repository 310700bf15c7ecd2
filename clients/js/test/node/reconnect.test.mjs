// Reconnection against a real server process that is restarted on the
// same port, abruptly (SIGKILL: the socket just drops) or gracefully
// (SIGTERM: rooms disposed with LEFT 503, MOVE, then close 4002
// "draining"). The new process does not know the old session: the resume
// fails and the client starts a new session and joins again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GameServer, freePort, waitFor } from "../helpers/server.mjs";
import { gs, newClient, nextEvent, recorder } from "../helpers/client.mjs";

const { ErrorCode, ARENA_INPUT } = gs;

async function withServer(fn) {
  const port = await freePort();
  const servers = [];
  const start = async () => {
    const s = await new GameServer({ port }).start();
    servers.push(s);
    return s;
  };
  try {
    await fn(start);
  } finally {
    for (const s of servers) await s.kill();
  }
}

test("after a crash and restart the client reconnects and re-joins a room of the same kind", async () => {
  await withServer(async (start) => {
    const srv = await start();
    const c = newClient(srv.wsUrl, { minReconnectDelay: 100, maxReconnectDelay: 1000 });
    try {
      const room = await c.joinOrCreate("arena", { size: 5 });
      const roomLog = recorder(room, ["reconnecting", "reconnected", "leave", "join"]);
      const clientLog = recorder(c, ["reconnecting", "reconnected", "disconnected"]);
      const oldId = room.id;
      await srv.kill();
      await waitFor(() => c.state === "reconnecting", 3000, "reconnecting state");
      // Kept for a resume of the session; dropped when the resume fails.
      assert.equal(room.send(ARENA_INPUT, [1, 1, 0]), true, "kept while reconnecting");
      await start();
      const ev = await waitFor(() => roomLog.find((e) => e.event === "reconnected"), 10000, "room reconnected");
      assert.equal(ev.value.roomChanged, true, "the old room died with the old process");
      assert.equal(ev.value.resumed, false, "the new process does not know the session");
      assert.equal(ev.value.previousRoomId, oldId);
      assert.notEqual(room.id, oldId);
      assert.equal(room.joined, true);
      assert.equal(room.kind, "arena");
      const first = roomLog.find((e) => e.event === "reconnecting");
      assert.equal(first.value.closeCode, 1006);
      assert.ok(first.value.attempt >= 1);
      assert.ok(clientLog.some((e) => e.event === "reconnected"));
      assert.ok(!roomLog.some((e) => e.event === "leave"), "the room was not left");
      // The re-joined room was created with the same options.
      const listed = (await c.getAvailableRooms("arena")).find((r) => r.roomId === room.id);
      assert.equal(listed.maxPlayers, 5);
      // And it works: inputs move the player again.
      room.send(ARENA_INPUT, [1, 1, 0]);
      await waitFor(() => room.state?.find((p) => p[0] === room.playerId)?.[3] === 1, 3000, "input applied after the reconnect");
    } finally {
      c.close();
    }
  });
});

test("a draining server (4002) is re-joined after a jittered delay, not treated as the room's end", async () => {
  await withServer(async (start) => {
    const srv = await start();
    const c = newClient(srv.wsUrl, { minReconnectDelay: 100, drainDelay: 600 });
    try {
      const room = await c.joinOrCreate("chat", { name: "dora" });
      const log = recorder(room, ["reconnecting", "reconnected", "leave"]);
      const stopping = srv.stop();
      const rec = await waitFor(() => log.find((e) => e.event === "reconnecting"), 5000, "reconnecting");
      assert.equal(rec.value.closeCode, 4002);
      // The server names the delay in a MOVE (jittered over 2 s), plus the
      // client's own jitter (moveJitter, 500 ms by default).
      assert.ok(rec.value.delay >= 0 && rec.value.delay <= 2500, `delay ${rec.value.delay}`);
      await stopping;
      await start();
      await waitFor(() => log.find((e) => e.event === "reconnected"), 10000, "reconnected");
      assert.ok(!log.some((e) => e.event === "leave"), "LEFT (disposed) before the drain close did not end the room");
      assert.equal(room.joined, true);
      const roster = await new Promise((resolve) => room.onMessage(0x1102, resolve));
      assert.deepEqual(roster.map((m) => m[1]), ["dora"], "joined again with the same options");
    } finally {
      c.close();
    }
  });
});

test("a server that stays down: reconnection gives up after maxRetries with a typed error", async () => {
  await withServer(async (start) => {
    const srv = await start();
    const c = newClient(srv.wsUrl, { minReconnectDelay: 50, maxReconnectDelay: 100, maxRetries: 3 });
    try {
      const room = await c.joinOrCreate("arena");
      const disconnected = nextEvent(room, "disconnected", 10000);
      const leave = nextEvent(room, "leave", 10000);
      const attempts = recorder(c, ["reconnecting"]);
      await srv.kill();
      const d = await disconnected;
      assert.equal(d.error.code, ErrorCode.ReconnectFailed);
      assert.equal(attempts.length, 3);
      assert.deepEqual(attempts.map((a) => a.value.attempt), [1, 2, 3]);
      assert.equal((await leave).reason, "disconnected");
      assert.equal(c.state, "idle");
      assert.equal(c.lastError.code, ErrorCode.ReconnectFailed);
    } finally {
      c.close();
    }
  });
});
