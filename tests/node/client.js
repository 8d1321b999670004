// A Node.js client of the public sparkctl.v1.MasterService, loading proto/ directly.
//
// Usage: node client.js HOST:PORT TINY_APP.py SLEEPY_APP.py
//
// Against a running master it lists the workers, submits TINY_APP in cluster
// mode and polls it to FINISHED, submits SLEEPY_APP and kills it, and checks
// the status codes of an unknown id (and, with SPARKCTL_SECRET set, of a call
// without credentials). It prints one JSON summary line and exits 0, or
// prints why and exits 1. Every wait is bounded.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "proto");
const DEADLINE_MS = 10_000;
const POLL_MS = 200;

function loadService() {
  const definition = protoLoader.loadSync("sparkctl/v1/master_service.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).sparkctl.v1.MasterService;
}

// The shared-secret proof of docs/security.md: v1:<ts>:<nonce>:<hmac>, bound to
// the (empty) env id of a plain client.
function authMetadata() {
  const metadata = new grpc.Metadata();
  const secret = process.env.SPARKCTL_SECRET;
  if (secret) {
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = crypto.randomBytes(16).toString("hex");
    const mac = crypto.createHmac("sha256", secret).update(`v1::${ts}:${nonce}`).digest("hex");
    metadata.set("x-sparkctl-auth", `v1:${ts}:${nonce}:${mac}`);
  }
  return metadata;
}

function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, metadata || authMetadata(), { deadline }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollDriver(client, driverId, wanted, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let state = "";
  while (Date.now() < end) {
    const reply = await call(client, "GetDriverStatus", { driver_id: driverId });
    state = reply.driver.state;
    if (state === wanted) return reply.driver;
    const terminal = ["DRIVER_STATE_FINISHED", "DRIVER_STATE_FAILED", "DRIVER_STATE_KILLED", "DRIVER_STATE_ERROR"];
    if (terminal.includes(state)) {
      throw new Error(`driver ${driverId} ended ${state}, wanted ${wanted}: ${reply.driver.exception}`);
    }
    await sleep(POLL_MS);
  }
  throw new Error(`driver ${driverId} still ${state} after ${timeoutMs} ms, wanted ${wanted}`);
}

function driverDescription(appPath, name) {
  return {
    app_resource: appPath,
    app_args: ["from-node"],
    cores: 1,
    memory_mb: 256,
    supervise: false,
    conf: { "spark.app.name": name },
    // Inline, as a client on another machine would send it.
    app_content: fs.readFileSync(appPath),
  };
}

async function expectCode(promise, code, what) {
  try {
    await promise;
  } catch (err) {
    if (err.code === code) return;
    throw new Error(`${what}: expected status ${code}, got ${err.code} (${err.details})`);
  }
  throw new Error(`${what}: expected status ${code}, the call succeeded`);
}

async function main() {
  const [target, tinyApp, sleepyApp] = process.argv.slice(2);
  if (!target || !tinyApp || !sleepyApp) {
    throw new Error("usage: node client.js HOST:PORT TINY_APP.py SLEEPY_APP.py");
  }
  const MasterService = loadService();
  const client = new MasterService(target, grpc.credentials.createInsecure());
  try {
    const state = await call(client, "GetClusterState", {});
    const alive = state.workers.filter((w) => w.state === "WORKER_STATE_ALIVE");
    for (const w of state.workers) {
      console.error(`worker ${w.id} ${w.host}:${w.port} ${w.state} cores ${w.cores_used}/${w.cores}`);
    }
    if (alive.length === 0) throw new Error("no ALIVE worker listed");

    const submitted = await call(client, "SubmitDriver", { description: driverDescription(tinyApp, "node-tiny") });
    const finished = await pollDriver(client, submitted.driver_id, "DRIVER_STATE_FINISHED", 60_000);

    const sleepy = await call(client, "SubmitDriver", { description: driverDescription(sleepyApp, "node-sleepy") });
    await pollDriver(client, sleepy.driver_id, "DRIVER_STATE_RUNNING", 60_000);
    const kill = await call(client, "KillDriver", { driver_id: sleepy.driver_id });
    if (!kill.killed) throw new Error(`KillDriver refused: ${kill.message}`);
    await pollDriver(client, sleepy.driver_id, "DRIVER_STATE_KILLED", 60_000);

    await expectCode(
      call(client, "GetDriverStatus", { driver_id: "driver-00000000000000-9999" }),
      grpc.status.NOT_FOUND,
      "status of an unknown driver",
    );
    if (process.env.SPARKCTL_SECRET) {
      await expectCode(
        call(client, "GetClusterState", {}, new grpc.Metadata()),
        grpc.status.UNAUTHENTICATED,
        "a call without credentials",
      );
    }
    console.log(
      JSON.stringify({
        workers: alive.map((w) => w.id),
        finished: finished.id,
        finished_on: finished.worker_id,
        killed: sleepy.driver_id,
      }),
    );
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`node client failed: ${err.message}`);
  process.exit(1);
});
