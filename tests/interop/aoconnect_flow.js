// Drive the real @permaweb/aoconnect in mainnet mode against a node.
//
// stdin: {"url": "http://127.0.0.1:PORT",
//         "scheduler"?: address (omitted: aoconnect asks GET /~meta@1.0/info/address),
//         "jwk_path": an RSA JWK file (aoconnect's createSigner is RSA only),
//         "steps": [{"call": "spawn", "module"?, "tags"?: [{name, value}], "data"?}
//                 | {"call": "message", "tags"?, "data"?}        (process: the spawned one)
//                 | {"call": "result", "slot"?}                   (default: the last message)
//                 | {"call": "results"}
//                 | {"call": "dryrun", "tags"?, "data"?}]}
// stdout: {"process": pid | null,
//          "steps": [{"call", "ok": bool, "value"?: what aoconnect returned, "error"?}],
//          "http": [{"method", "url", "headers", "body": {"ans104": {id, signature_type,
//                    target, anchor, tags, data}} | {"text"}, "status", "response_headers",
//                    "response": text}]}   (every request aoconnect made, in order)
// A failing call is recorded and the following steps still run, so a test can
// report everything the client did.
"use strict";

const fs = require("fs");
const { DataItem } = require("@dha-team/arbundles");

const http = [];
const realFetch = globalThis.fetch;

function describeBody(body, headers) {
  if (body === undefined || body === null) return null;
  const ctype = String(headers["content-type"] || headers["Content-Type"] || "");
  if (typeof body === "string") return { text: body };
  const bytes = Buffer.from(body.buffer ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : body);
  if (ctype.includes("ans104")) {
    try {
      const item = new DataItem(bytes);
      return {
        ans104: {
          id: item.id,
          signature_type: item.signatureType,
          target: item.target || "",
          anchor: item.anchor || "",
          tags: item.tags,
          data: Buffer.from(item.rawData).toString("utf8"),
        },
      };
    } catch (err) {
      return { unparsed: bytes.toString("base64url"), error: String(err) };
    }
  }
  return { text: bytes.toString("utf8") };
}

// aoconnect and ao-core-libs call the global fetch at request time: record each exchange.
globalThis.fetch = async (url, init = {}) => {
  const headers = {};
  for (const [k, v] of Object.entries(init.headers || {})) headers[k] = String(v);
  const entry = {
    method: init.method || "GET",
    url: String(url),
    headers,
    body: describeBody(init.body, headers),
  };
  http.push(entry);
  const response = await realFetch(url, init);
  entry.status = response.status;
  entry.response_headers = Object.fromEntries(response.headers.entries());
  entry.response = await response.clone().text();
  return response;
};

function plain(value) {
  return JSON.parse(JSON.stringify(value === undefined ? null : value));
}

async function main() {
  // The ESM build: 0.0.98's CommonJS build breaks in mainnet mode
  // ("import_ao_core_libs.default.init is not a function").
  const { connect, createSigner } = await import("@permaweb/aoconnect");
  // spawn prefers these environment variables to its arguments: keep runs reproducible
  delete process.env.MODULE;
  delete process.env.AUTHORITY;
  const config = JSON.parse(fs.readFileSync(0, "utf8"));
  const jwk = JSON.parse(fs.readFileSync(config.jwk_path, "utf8"));
  const options = { MODE: "mainnet", URL: config.url, signer: createSigner(jwk) };
  if (config.scheduler) options.SCHEDULER = config.scheduler;
  const ao = connect(options);

  let pid = null;
  let lastSlot = null;
  const steps = [];
  for (const step of config.steps) {
    const record = { call: step.call };
    try {
      let value;
      if (step.call === "spawn") {
        value = await ao.spawn({ module: step.module, tags: step.tags, data: step.data });
        pid = value;
      } else if (step.call === "message") {
        value = await ao.message({
          process: pid,
          tags: step.tags,
          data: step.data,
          returnMessageId: true,
          returnAssignmentSlot: true,
        });
        lastSlot = value && value.slot;
      } else if (step.call === "result") {
        value = await ao.result({ process: pid, slot: step.slot ?? lastSlot });
      } else if (step.call === "results") {
        value = await ao.results({ process: pid });
      } else if (step.call === "dryrun") {
        value = await ao.dryrun({ process: pid, tags: step.tags, data: step.data });
      } else {
        throw new Error(`unknown call ${step.call}`);
      }
      record.ok = true;
      record.value = plain(value);
    } catch (err) {
      record.ok = false;
      record.error = String((err && err.message) || err);
    }
    steps.push(record);
  }
  process.stdout.write(JSON.stringify({ process: pid, steps, http }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
