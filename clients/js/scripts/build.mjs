// Builds the client.
//
//   node scripts/build.mjs            web/gameserver.js: one ES module, dependencies included,
//                                     the file the server embeds and serves at /gameserver.js
//   node scripts/build.mjs --check    builds to a temporary file and fails if web/gameserver.js
//                                     differs from it byte for byte (a stale committed bundle)
//   node scripts/build.mjs --package  dist/gameserver.js for npm, @msgpack/msgpack left external
//
// The build is deterministic: the same sources and esbuild version give
// the same bytes.
import { build } from "esbuild";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoDir = resolve(pkgDir, "../..");
const bundlePath = join(repoDir, "web", "gameserver.js");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));

function options(outfile, { external = [] } = {}) {
  return {
    absWorkingDir: pkgDir,
    entryPoints: ["src/index.ts"],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2022",
    minify: true,
    charset: "utf8",
    legalComments: "eof",
    external,
    banner: {
      js: external.length
        ? `/* ${pkg.name} ${pkg.version}: gameserver client, built from clients/js. */`
        : `/* ${pkg.name} ${pkg.version}: gameserver browser client, built from clients/js (npm run build). Do not edit. Includes @msgpack/msgpack (ISC license). */`,
    },
    logLevel: "warning",
  };
}

const mode = process.argv[2] ?? "";
if (mode === "--check") {
  const tmp = mkdtempSync(join(tmpdir(), "gameserver-bundle-"));
  try {
    const fresh = join(tmp, "gameserver.js");
    await build(options(fresh));
    const want = readFileSync(fresh);
    const have = existsSync(bundlePath) ? readFileSync(bundlePath) : null;
    if (!have || !want.equals(have)) {
      console.error(
        `${relative(process.cwd(), bundlePath)} is stale: it differs from a fresh build of clients/js/src ` +
          `(${have ? have.length : "missing"} bytes committed, ${want.length} built). Run "npm run build" in clients/js and commit the result.`,
      );
      process.exit(1);
    }
    console.log(`${relative(repoDir, bundlePath)} is up to date (${want.length} bytes)`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else if (mode === "--package") {
  await build(options(join(pkgDir, "dist", "gameserver.js"), { external: ["@msgpack/msgpack"] }));
  console.log("wrote dist/gameserver.js");
} else if (mode === "") {
  await build(options(bundlePath));
  console.log(`wrote ${relative(repoDir, bundlePath)} (${readFileSync(bundlePath).length} bytes)`);
} else {
  console.error(`unknown argument ${mode}: want --check, --package or nothing`);
  process.exit(2);
}
