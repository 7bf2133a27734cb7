// Drive the real @permaweb/aoconnect in legacy mode, and @permaweb/ao-scheduler-utils,
// against a node acting as the legacy network's MU, SU and CU, with arlocal as the gateway.
//
// stdin: {"node_url", "arlocal_url",
//         "node_jwk_path":  the node's RSA wallet (signs its Scheduler-Location on arlocal),
//         "client_jwk_path": the user's RSA wallet (signs the spawn and the messages),
//         "module_path":  a file holding the Lua module's source (posted to arlocal),
//         "tags": [{name, value}] added to the spawn,
//         "messages": [{"tags", "data"}], "assign": id of a message stored on the node,
//         "dryrun": {"tags", "data", "owner"}}
// stdout: {"module", "process", "steps": [{"call", "ok", "value"?, "error"?}],
//          "http": [{"method", "url", "headers", "status", "response"}]}  (every request made)
// Nothing is stubbed: aoconnect and ao-scheduler-utils call the node and arlocal over HTTP.
"use strict";

const fs = require("fs");
const Arweave = require("arweave");

const http = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  const headers = {};
  for (const [k, v] of Object.entries(init.headers || {})) headers[k] = String(v);
  const entry = { method: init.method || "GET", url: String(url), headers };
  http.push(entry);
  const response = await realFetch(url, init);
  entry.status = response.status;
  entry.response = (await response.clone().text()).slice(0, 2000);
  return response;
};

async function postTx(arweave, base, jwk, data, tags) {
  const address = await arweave.wallets.jwkToAddress(jwk);
  await realFetch(`${base}/mint/${address}/1000000000000`);
  const tx = await arweave.createTransaction({ data }, jwk);
  for (const t of tags) tx.addTag(t.name, t.value);
  await arweave.transactions.sign(tx, jwk);
  const res = await arweave.transactions.post(tx);
  if (res.status >= 300) throw new Error(`post failed: ${res.status} ${JSON.stringify(res.data)}`);
  return tx.id;
}

function plain(value) {
  return JSON.parse(JSON.stringify(value === undefined ? null : value));
}

async function main() {
  const config = JSON.parse(fs.readFileSync(0, "utf8"));
  const u = new URL(config.arlocal_url);
  const arweave = Arweave.init({ host: u.hostname, port: Number(u.port), protocol: "http" });
  const nodeJwk = JSON.parse(fs.readFileSync(config.node_jwk_path, "utf8"));
  const clientJwk = JSON.parse(fs.readFileSync(config.client_jwk_path, "utf8"));
  const nodeAddress = await arweave.wallets.jwkToAddress(nodeJwk);

  // The gateway's view of the legacy network: a module and the node's Scheduler-Location.
  const module = await postTx(arweave, config.arlocal_url, clientJwk, fs.readFileSync(config.module_path, "utf8"), [
    { name: "Data-Protocol", value: "ao" },
    { name: "Type", value: "Module" },
    { name: "Module-Format", value: "lua" },
    { name: "Input-Encoding", value: "JSON-1" },
    { name: "Output-Encoding", value: "JSON-1" },
    { name: "Content-Type", value: "application/lua" },
  ]);
  await postTx(arweave, config.arlocal_url, nodeJwk, "1984", [
    { name: "Data-Protocol", value: "ao" },
    { name: "Variant", value: "ao.TN.1" },
    { name: "Type", value: "Scheduler-Location" },
    { name: "Url", value: config.node_url },
    { name: "Time-To-Live", value: "3600000" },
  ]);
  await realFetch(`${config.arlocal_url}/mine`);

  // Both packages read GRAPHQL_URL when they load: set it first.
  process.env.GRAPHQL_URL = `${config.arlocal_url}/graphql`;
  delete process.env.MU_URL;
  delete process.env.CU_URL;
  const { connect, createDataItemSigner } = await import("@permaweb/aoconnect");
  const schedulerUtils = await import("@permaweb/ao-scheduler-utils");
  const ao = connect({
    MODE: "legacy",
    MU_URL: config.node_url,
    CU_URL: config.node_url,
    GATEWAY_URL: config.arlocal_url,
  });
  const signer = createDataItemSigner(clientJwk);

  let pid = null;
  const steps = [];
  async function step(call, fn) {
    const record = { call };
    try {
      record.value = plain(await fn());
      record.ok = true;
    } catch (err) {
      record.ok = false;
      record.error = String((err && err.stack) || err);
    }
    steps.push(record);
    return record.value;
  }

  pid = await step("spawn", () =>
    ao.spawn({ module, scheduler: nodeAddress, signer, tags: config.tags || [], data: "legacy" })
  );
  const ids = [];
  for (const m of config.messages || []) {
    const id = await step("message", () => ao.message({ process: pid, signer, tags: m.tags, data: m.data }));
    ids.push(id);
    await step("result", () => ao.result({ process: pid, message: id }));
  }
  if (config.dryrun) {
    await step("dryrun", () => ao.dryrun({ process: pid, tags: config.dryrun.tags, data: config.dryrun.data, Owner: config.dryrun.owner }));
  }
  if (config.assign) {
    await step("assign", () => ao.assign({ process: pid, message: config.assign }));
  }
  // ao-scheduler-utils: the Scheduler-Location on the gateway names the node ...
  await step("validate", () => schedulerUtils.validate(nodeAddress));
  await step("raw", () => schedulerUtils.raw(nodeAddress));
  // ... locate follows a possible router redirect (GET /?process-id=) ...
  const redirecting = schedulerUtils.connect({ GRAPHQL_URL: process.env.GRAPHQL_URL, followRedirects: true });
  await step("locate-redirects", () => redirecting.locate(pid, nodeAddress));
  // ... and the module-level locate (the one aoconnect uses) caches the node for pid.
  await step("locate", () => schedulerUtils.locate(pid, nodeAddress));
  // aoconnect's legacy readers go to that SU
  await step("getMessages", () =>
    ao.getMessages({ processId: pid, from: "0", to: String(Date.now() + 3600000), limit: "1000" })
  );
  await step("getMessageById", () => ao.getMessageById({ processId: pid, messageId: ids[0] }));
  await step("getLastSlot", () => ao.getLastSlot({ processId: pid }));
  await step("message-slot", () =>
    ao.message({ process: pid, signer, tags: [{ name: "Action", value: "Ping" }], data: "", returnAssignmentSlot: true })
  );
  process.stdout.write(JSON.stringify({ module, process: pid, node_address: nodeAddress, ids, steps, http }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
