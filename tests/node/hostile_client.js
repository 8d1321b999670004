// A careless Node.js client of MasterService: oversized ids, empty and garbage requests.
//
// Usage: node hostile_client.js HOST:PORT
//
// Every call must end with its proper status code well before its deadline, on one
// channel; prints one JSON line {call: "CODE details"} and exits 0, or says why and
// exits 1.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const DEADLINE_MS = 5_000;

function loadService() {
  const definition = protoLoader.loadSync("sparkctl/v1/master_service.proto", {
    includeDirs: [path.resolve(__dirname, "..", "..", "proto")],
    keepCase: true,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).sparkctl.v1.MasterService;
}

function outcome(client, method, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, new grpc.Metadata(), { deadline }, (err) =>
      resolve(err ? `${grpc.status[err.code]} ${err.details}` : "OK"),
    );
  });
}

function rawOutcome(client, method, bytes) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client.makeUnaryRequest(
      `/sparkctl.v1.MasterService/${method}`,
      (buffer) => buffer,
      (buffer) => buffer,
      bytes,
      new grpc.Metadata(),
      { deadline },
      (err) => resolve(err ? `${grpc.status[err.code]} ${err.details}` : "OK"),
    );
  });
}

async function main() {
  const target = process.argv[2];
  const MasterService = loadService();
  const client = new MasterService(target, grpc.credentials.createInsecure());
  const huge = "d".repeat(200_000);
  const results = {};
  try {
    results.hugeDriverStatus = await outcome(client, "GetDriverStatus", { driver_id: huge });
    results.hugeKillApplication = await outcome(client, "KillApplication", { app_id: huge });
    results.emptyKillDriver = await outcome(client, "KillDriver", {});
    results.emptySubmit = await outcome(client, "SubmitDriver", {});
    results.garbage = await rawOutcome(client, "GetDriverStatus", Buffer.from([0xff, 0xff, 0xff]));
    results.state = await outcome(client, "GetClusterState", {});
  } finally {
    client.close();
  }
  console.log(JSON.stringify(results));
}

main().catch((err) => {
  console.error(`hostile client failed: ${err.message}`);
  process.exit(1);
});
