// Verify and read ANS-104 data items with arbundles.
// stdin:  {"items": [b64url raw item]}
// stdout: {"results": [{"valid": bool, "id", "signature_type", "owner", "target",
//                       "anchor", "tags": [{name, value}], "data"} | {"valid": false, "error"}]}
// (binary fields as b64url; arweave-js logs verification failures on stderr).
"use strict";
const fs = require("fs");
const { DataItem } = require("@dha-team/arbundles");

async function read(b64) {
  const raw = Buffer.from(b64, "base64url");
  try {
    const valid = await DataItem.verify(raw);
    const item = new DataItem(raw);
    return {
      valid,
      id: item.id,
      signature_type: item.signatureType,
      owner: item.rawOwner.toString("base64url"),
      target: item.rawTarget.toString("base64url"),
      anchor: item.rawAnchor.toString("base64url"),
      tags: item.tags,
      data: item.rawData.toString("base64url"),
    };
  } catch (err) {
    return { valid: false, error: String(err) };
  }
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const results = [];
  for (const b64 of input.items) results.push(await read(b64));
  process.stdout.write(JSON.stringify({ results }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
