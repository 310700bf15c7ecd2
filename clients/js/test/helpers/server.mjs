// Runs real gameserver processes for the tests: built once (the binary in
// GAMESERVER_BIN, else built here into a temporary directory), started on
// a free loopback port, ready once /readyz answers, stopped by PID.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** The go command: GO, else go on PATH, else the usual install location. */
export function goCommand() {
  if (process.env.GO) return process.env.GO;
  try {
    execFileSync("go", ["version"], { stdio: "ignore" });
    return "go";
  } catch {
    return "/usr/local/go/bin/go";
  }
}

/** Builds ./cmd/gameserver into dir and returns the binary's path. */
export function buildServer(dir) {
  const bin = join(dir, "gameserver");
  execFileSync(goCommand(), ["build", "-o", bin, "./cmd/gameserver"], { cwd: repoDir, stdio: ["ignore", "inherit", "inherit"], timeout: 300_000 });
  return bin;
}

let ownBuild;
/** The server binary: GAMESERVER_BIN, or a build made for this process. */
export function serverBinary() {
  if (process.env.GAMESERVER_BIN && existsSync(process.env.GAMESERVER_BIN)) return process.env.GAMESERVER_BIN;
  if (!ownBuild) {
    const dir = mkdtempSync(join(tmpdir(), "gameserver-jstest-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    ownBuild = buildServer(dir);
  }
  return ownBuild;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every 20 ms until it returns a truthy value or timeoutMs passes. */
export async function waitFor(cond, timeoutMs = 5000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** A value of the server's Prometheus metrics (0 when absent). */
export async function metric(srv, name) {
  const text = await (await fetch(`${srv.httpUrl}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

const running = new Set();
process.on("exit", () => {
  for (const p of running) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  }
});

/**
 * A gameserver process. start() launches it and waits for /readyz; stop()
 * ends it with SIGTERM (SIGKILL after 5 s); kill() ends it at once.
 */
export class GameServer {
  constructor({ port, args = [] } = {}) {
    this.port = port;
    this.args = args;
    this.proc = null;
    this.log = "";
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start() {
    this.port ??= await freePort();
    const bin = serverBinary();
    const args = ["--addr", `127.0.0.1:${this.port}`, "--log-format", "json", "--log-level", "warn", "--shutdown-timeout", "3s", ...this.args];
    const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    running.add(proc);
    const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
    proc.exited = exited;
    exited.then(() => running.delete(proc));
    const append = (d) => {
      this.log += d.toString();
      if (this.log.length > 100_000) this.log = this.log.slice(-50_000);
    };
    proc.stdout.on("data", append);
    proc.stderr.on("data", append);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`gameserver exited during start (${proc.exitCode ?? proc.signalCode}):\n${this.log}`);
      }
      try {
        const res = await fetch(`${this.httpUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return this;
      } catch {}
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`gameserver not ready within 10 s:\n${this.log}`);
      }
      await sleep(25);
    }
  }

  /** Graceful stop: SIGTERM (the server drains: rooms disposed, close 4002). */
  async stop() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    process.kill(proc.pid, "SIGTERM");
    const t = setTimeout(() => {
      try {
        process.kill(proc.pid, "SIGKILL");
      } catch {}
    }, 5000);
    await proc.exited;
    clearTimeout(t);
  }

  /** Abrupt stop: SIGKILL, as a crash would (clients see 1006). */
  async kill() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    process.kill(proc.pid, "SIGKILL");
    await proc.exited;
  }
}

/** Starts a server; the caller stops it. */
export async function startServer(opts) {
  return new GameServer(opts).start();
}
