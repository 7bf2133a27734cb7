// aoconnect in mainnet (HyperBEAM) mode against aonode.
// Run: AONODE_URL=http://127.0.0.1:8734 WALLET=me.json MODULE=<module id> node recipe_mainnet.mjs
// (ESM only: the CommonJS build of aoconnect 0.0.98 crashes when required.)
import { readFileSync } from "node:fs";
import { connect, createSigner } from "@permaweb/aoconnect";

const NODE = process.env.AONODE_URL ?? "http://127.0.0.1:8734";
const jwk = JSON.parse(readFileSync(process.env.WALLET, "utf8"));
const ao = connect({ MODE: "mainnet", URL: NODE, signer: createSigner(jwk) });
const Eval = (data) => ({ tags: [{ name: "Action", value: "Eval" }], data });

const pid = await ao.spawn({
  module: process.env.MODULE, // a Lua module the node stores (or a WASM one: see the README)
  tags: [{ name: "execution-device", value: "lua@5.3a" }], // lowercase: replaces genesis-wasm@1.0
});
await ao.message({ process: pid, ...Eval("X = 20") });
const slot = await ao.message({ process: pid, ...Eval("return X + 1") }); // mainnet: the slot
const result = await ao.result({ process: pid, slot });
const dry = await ao.dryrun({ process: pid, ...Eval("return X * 2") });

console.log(JSON.stringify({ pid, slot, result, dryrun: dry }));
