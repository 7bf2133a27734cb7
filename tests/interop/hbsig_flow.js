// Sign AO messages with the real `hbsig` client (HyperBEAM's httpsig@1.0, RFC 9421)
// and send them to a node.
//
// stdin: {"url": "http://127.0.0.1:PORT", "jwk_path": an RSA JWK file,
//         "steps": [{"path": "/~scheduler@1.0/schedule" | "/$PID~process@1.0/schedule",
//                    "fields": {key: string}, "data"?: string,
//                    "tamper"?: {header: string | null}}]}
//   "$PID" in a path or field value is replaced by the process id the node
//   returned (header `process`) for an earlier step.  A step without `tamper`
//   goes through hbsig's own `send`; a tampered one is sent with fetch after
//   its headers are changed (null removes a header).
// stdout: {"address": the signer's address (hbsig's toAddr of the keyid),
//          "steps": [{"status", "response": text, "process"?: header,
//                     "rsaid": hbsig's rsaid (sha256 of the signature),
//                     "hbsig_verified": hbsig's own verify, "headers": the signed headers}]}
"use strict";

const fs = require("fs");
const { createSigner, send, rsaid, verify, extractPubKey, toAddr } = require("hbsig");

async function bodyBytes(body) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body.arrayBuffer) return Buffer.from(await body.arrayBuffer());
  return Buffer.from(body);
}

function substitute(value, pid) {
  return pid && typeof value === "string" ? value.split("$PID").join(pid) : value;
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const jwk = JSON.parse(fs.readFileSync(input.jwk_path, "utf8"));
  const signer = createSigner(jwk, input.url);
  let pid = null;
  let address = null;
  const steps = [];
  for (const step of input.steps) {
    const fields = {};
    for (const [k, v] of Object.entries(step.fields)) fields[k] = substitute(v, pid);
    if (step.data !== undefined) fields.data = substitute(step.data, pid);
    const signed = await signer({ ...fields, path: substitute(step.path, pid) });
    const lower = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), v]));
    address = toAddr(extractPubKey(lower).toString("base64"));
    const body = await bodyBytes(signed.body);
    const check = await verify({ ...signed, headers: lower, body });
    const record = { rsaid: rsaid(lower), hbsig_verified: check.verified, headers: signed.headers };
    if (step.tamper) {
      const headers = { ...signed.headers };
      for (const [name, value] of Object.entries(step.tamper)) {
        for (const key of Object.keys(headers)) if (key.toLowerCase() === name) delete headers[key];
        if (value !== null) headers[name] = value;
      }
      const r = await fetch(signed.url, { method: signed.method, headers, body });
      Object.assign(record, { status: r.status, response: await r.text() });
    } else {
      try {
        const r = await send({ ...signed, body });
        Object.assign(record, { status: r.status, response: r.body, process: r.headers.process });
        if (r.headers.process && !pid) pid = r.headers.process;
      } catch (err) {
        Object.assign(record, { status: null, response: String(err && err.message) });
      }
    }
    steps.push(record);
  }
  process.stdout.write(JSON.stringify({ address, steps }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
