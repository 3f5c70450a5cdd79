// `npm run chaos`: the whole chaos run, its figures printed as docs/RELIABILITY.md records them.
// Options: --per-second N (default 4), --down-ms, --settle-ms, --json FILE (the full report),
// --faults a,b (a subset of the targets, e.g. postgres,nats-2), --keep (keep the cluster's logs and data).
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { fullFaults, runChaos, reportTable } from "./chaos.ts";
import { startChaosCluster } from "./cluster.ts";
import { prepareClient } from "./setup.ts";

const { values } = parseArgs({
  options: { "per-second": { type: "string", default: "4" }, "down-ms": { type: "string", default: "4000" }, "settle-ms": { type: "string", default: "8000" }, json: { type: "string" }, faults: { type: "string" }, keep: { type: "boolean" } },
});
const log = (line: string) => console.log(`chaos: ${line}`);
log("starting the cluster: Postgres, 3 NATS nodes, 2 gateways, 2 of every service and worker");
const faults = values.faults ? fullFaults.filter((f) => values.faults!.split(",").includes(f.target)) : fullFaults;
if (faults.length === 0) throw new Error(`no such fault among ${fullFaults.map((f) => f.target).join(", ")}`);
const cluster = await startChaosCluster({ log, keep: values.keep });
let failed = true;
try {
  const client = await prepareClient(cluster.gateways[0]!, cluster.databaseUrl);
  const report = await runChaos({
    cluster,
    ...client,
    perSecond: Number(values["per-second"]),
    faults,
    baselineMs: 10_000,
    downMs: Number(values["down-ms"]),
    settleMs: Number(values["settle-ms"]),
    drainMs: 90_000,
    recoverWithinMs: 30_000,
    log,
  });
  console.log(`\n${cpus().length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}\n`);
  console.log(reportTable(report));
  if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
  failed = report.failures.length > 0;
} finally {
  await cluster.stop();
  if (values.keep) log(`logs and data kept in ${cluster.dir}`);
}
process.exit(failed ? 1 : 0);
