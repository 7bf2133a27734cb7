// Drive the real @permaweb/ao-scheduler-utils against one node acting as the gateway.
// stdin: {"url": the node, "address": its scheduler wallet, "pid": a process it schedules}
// stdout: {"validate", "unknown", "raw", "locate", "getProcess"}
import { readFileSync } from "node:fs";

const config = JSON.parse(readFileSync(0, "utf8"));
// the module-level functions read GRAPHQL_URL when the package loads
process.env.GRAPHQL_URL = `${config.url}/graphql`;
const utils = await import("@permaweb/ao-scheduler-utils");

const out = {};
out.validate = await utils.validate(config.address);
out.unknown = await utils.validate("U".repeat(43)).catch((err) => err.name); // not a scheduler: throws
out.raw = await utils.raw(config.address);
out.locate = await utils.locate(config.pid, config.address);
// getProcess asks a HyperBEAM cache first and falls back to the gateway's GraphQL:
// point the cache at a closed port so the GraphQL answer is the one read
const connected = utils.connect({ GRAPHQL_URL: process.env.GRAPHQL_URL, HB_GRAPHQL_URL: "http://127.0.0.1:9" });
out.getProcess = await connected.getProcess(config.pid);
process.stdout.write(JSON.stringify(out));
