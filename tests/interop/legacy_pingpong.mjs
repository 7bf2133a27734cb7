// aoconnect in legacy mode, one aonode as MU, CU, SU and gateway: a ping/pong between two
// processes.  stdin: {"url", "jwk_path", "module", "phase": "send" | "read", ...}
//   send: spawn A and B, give B a Ping handler (answers A with a Pong) and A a Pong
//         counter, then ask A to Ping B.  stdout: {"a", "b", "ping"} (ping: the message id)
//   read ({"a", "b", "ping"} given): A's result of the ping, and dry runs of both counters.
// (ESM only: the CommonJS build of aoconnect crashes when required.)
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const config = JSON.parse(readFileSync(0, "utf8"));
const NODE = config.url;
process.env.GRAPHQL_URL = `${NODE}/graphql`; // read by ao-scheduler-utils when it loads
delete process.env.MU_URL;
delete process.env.CU_URL;
const { connect, createDataItemSigner } = await import("@permaweb/aoconnect");

const jwk = JSON.parse(readFileSync(config.jwk_path, "utf8"));
const me = createHash("sha256").update(Buffer.from(jwk.n, "base64url")).digest("base64url");
const { address: scheduler } = await (await fetch(NODE)).json();
const ao = connect({ MODE: "legacy", MU_URL: NODE, CU_URL: NODE, GATEWAY_URL: NODE });
const signer = createDataItemSigner(jwk);
const Eval = (data) => ({ tags: [{ name: "Action", value: "Eval" }], data });

async function spawn() {
  return ao.spawn({
    module: config.module,
    scheduler,
    signer,
    tags: [
      { name: "Execution-Device", value: "lua@5.3a" },
      { name: "Authority", value: me },
    ],
  });
}

if (config.phase === "send") {
  const a = await spawn();
  const b = await spawn();
  await ao.message({
    process: b,
    signer,
    // hyper-aos trusts a message from another process only if that process is an authority
    ...Eval(
      `table.insert(ao.authorities, '${a}')\n` +
        "Pings = 0\n" +
        "Handlers.add('Ping', 'Ping', function(msg)\n" +
        "  Pings = Pings + 1\n" +
        `  Send({ Target = '${a}', Action = 'Pong' })\n` +
        "end)",
    ),
  });
  await ao.message({
    process: a,
    signer,
    ...Eval(
      `table.insert(ao.authorities, '${b}')\n` +
        "Pongs = 0\n" +
        "Handlers.add('Pong', 'Pong', function() Pongs = Pongs + 1 end)",
    ),
  });
  const ping = await ao.message({ process: a, signer, ...Eval(`Send({ Target = '${b}', Action = 'Ping' })`) });
  console.log(JSON.stringify({ a, b, ping }));
} else {
  const result = await ao.result({ process: config.a, message: config.ping });
  const pongs = await ao.dryrun({ process: config.a, Owner: me, ...Eval("return Pongs") });
  const pings = await ao.dryrun({ process: config.b, Owner: me, ...Eval("return Pings") });
  console.log(JSON.stringify({ result, pongs: pongs.Output, pings: pings.Output }));
}
