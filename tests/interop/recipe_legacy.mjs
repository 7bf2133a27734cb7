// aoconnect in legacy mode, with one aonode as MU, CU, SU and gateway (no Arweave gateway).
// Run: AONODE_URL=http://127.0.0.1:8734 WALLET=me.json MODULE=<module id> node recipe_legacy.mjs
// (ESM only: the CommonJS build of aoconnect 0.0.98 crashes when required.)
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const NODE = process.env.AONODE_URL ?? "http://127.0.0.1:8734";
// ao-scheduler-utils (used by aoconnect) reads GRAPHQL_URL when it loads: set it first.
process.env.GRAPHQL_URL = `${NODE}/graphql`;
const { connect, createDataItemSigner } = await import("@permaweb/aoconnect");

const jwk = JSON.parse(readFileSync(process.env.WALLET, "utf8"));
const me = createHash("sha256").update(Buffer.from(jwk.n, "base64url")).digest("base64url");
const { address: scheduler } = await (await fetch(NODE)).json(); // GET / names the node's wallet
const ao = connect({ MODE: "legacy", MU_URL: NODE, CU_URL: NODE, GATEWAY_URL: NODE });
const signer = createDataItemSigner(jwk);
const Eval = (data) => ({ tags: [{ name: "Action", value: "Eval" }], data });

const pid = await ao.spawn({
  module: process.env.MODULE, // a Lua module the node stores (tags: see the README)
  scheduler,
  signer,
  tags: [
    { name: "Execution-Device", value: "lua@5.3a" },
    { name: "Authority", value: me },
  ],
});
const first = await ao.message({ process: pid, signer, ...Eval("X = 20") });
const second = await ao.message({ process: pid, signer, ...Eval("return X + 1") });
const result = await ao.result({ process: pid, message: second });
const results = await ao.results({ process: pid, sort: "DESC", limit: 2 });
const dry = await ao.dryrun({ process: pid, Owner: me, ...Eval("return X * 2") });

console.log(JSON.stringify({ pid, messages: [first, second], result, results, dryrun: dry }));
