// Runs the test suites with one server build: builds ./cmd/gameserver once
// into a temporary directory (unless GAMESERVER_BIN names a binary), then
// runs `node --test` on test/node, test/browser or both, one file at a time.
//
//   node scripts/run-tests.mjs [node|browser|all]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildServer } from "../test/helpers/server.mjs";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const suite = process.argv[2] ?? "all";
const dirs = { node: ["test/node"], browser: ["test/browser"], all: ["test/node", "test/browser"] }[suite];
if (!dirs) {
  console.error(`unknown suite ${suite}: want node, browser or all`);
  process.exit(2);
}
const files = dirs.flatMap((d) =>
  readdirSync(join(pkgDir, d))
    .filter((f) => f.endsWith(".test.mjs"))
    .sort()
    .map((f) => join(d, f)),
);

let tmp;
const env = { ...process.env };
if (!env.GAMESERVER_BIN) {
  tmp = mkdtempSync(join(tmpdir(), "gameserver-jstest-"));
  console.log("building the server for the tests…");
  env.GAMESERVER_BIN = buildServer(tmp);
}
let status = 1;
try {
  const res = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=120000", ...files], {
    cwd: pkgDir,
    env,
    stdio: "inherit",
    timeout: 20 * 60_000,
  });
  status = res.status ?? 1;
  if (res.error) console.error(res.error);
} finally {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
process.exit(status);
