// Node's own fetch (undici) posts a body over the node's limit: it must read
// the node's 413 and its JSON error, not fail with a socket error (EPIPE).
import { stdin } from "node:process";

let input = "";
for await (const chunk of stdin) input += chunk;
const { url, size } = JSON.parse(input);

const out = {};
try {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/ans104" },
    body: new Uint8Array(size),
  });
  out.status = r.status;
  out.connection = r.headers.get("connection");
  out.body = await r.json();
} catch (err) {
  out.error = String(err) + " " + String(err?.cause ?? "");
}
process.stdout.write(JSON.stringify(out));
