// Sign ANS-104 data items with arbundles.
// stdin:  {"signer": {"kind": "rsa-new" | "ed25519-new" | "rsa-jwk" | "ed25519-jwk",
//                     "jwk_path"?: path of a JWK file},
//          "items": [{"data": b64url, "tags": [{name, value}], "target": b64url | "",
//                     "anchor": 32-character string | ""}]}
// stdout: {"jwk": the signer's private JWK, "items": [{"raw": b64url, "id": string}]}
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const bs58 = require("bs58");
const { ArweaveSigner, SolanaSigner, createData } = require("@dha-team/arbundles");

function makeSigner(spec) {
  let jwk;
  if (spec.kind === "rsa-new") {
    const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 4096, publicExponent: 65537 });
    jwk = privateKey.export({ format: "jwk" });
  } else if (spec.kind === "ed25519-new") {
    const { privateKey } = crypto.generateKeyPairSync("ed25519");
    jwk = privateKey.export({ format: "jwk" });
  } else {
    jwk = JSON.parse(fs.readFileSync(spec.jwk_path, "utf8"));
  }
  if (jwk.kty === "RSA") return { jwk, signer: new ArweaveSigner(jwk) };
  // SolanaSigner (signature type 2) takes base58(secret seed ‖ public key).
  const secret = Buffer.concat([Buffer.from(jwk.d, "base64url"), Buffer.from(jwk.x, "base64url")]);
  return { jwk, signer: new SolanaSigner(bs58.encode(secret)) };
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const { jwk, signer } = makeSigner(input.signer);
  const items = [];
  for (const spec of input.items) {
    const opts = { tags: spec.tags };
    if (spec.target) opts.target = spec.target;
    if (spec.anchor) opts.anchor = spec.anchor;
    const item = createData(Buffer.from(spec.data, "base64url"), signer, opts);
    await item.sign(signer);
    items.push({ raw: item.getRaw().toString("base64url"), id: item.id });
  }
  process.stdout.write(JSON.stringify({ jwk, items }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
