// Post a data transaction to an arlocal node and mine it.
// stdin:  {"url": "http://127.0.0.1:PORT", "data": "<text>", "tags": [{name, value}]}
// stdout: {"id": "<transaction id>"}
"use strict";
const fs = require("fs");
const Arweave = require("arweave");

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const u = new URL(input.url);
  const arweave = Arweave.init({ host: u.hostname, port: Number(u.port), protocol: "http" });
  const jwk = await arweave.wallets.generate();
  const address = await arweave.wallets.jwkToAddress(jwk);
  await fetch(`${input.url}/mint/${address}/1000000000000`);
  const tx = await arweave.createTransaction({ data: input.data }, jwk);
  for (const t of input.tags || []) tx.addTag(t.name, t.value);
  await arweave.transactions.sign(tx, jwk);
  const res = await arweave.transactions.post(tx);
  if (res.status >= 300) throw new Error(`post failed: ${res.status} ${JSON.stringify(res.data)}`);
  await fetch(`${input.url}/mine`);
  process.stdout.write(JSON.stringify({ id: tx.id }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
