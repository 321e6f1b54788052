// The agent baked into the test session's snapshot (build-snapshot --agent-bundle): the example agent's behaviour
// (identity to the journal, a heartbeat file) plus a real dependency the build installed with `npm ci`.
"use strict";
const fs = require("fs");
const isNumber = require("is-number");

const { AGENT_ID, SERVER_NAME } = process.env;
if (!AGENT_ID) {
  console.error("baked agent: AGENT_ID is not set");
  process.exit(1);
}
const heartbeat = "/opt/openclaw/logs/heartbeat.json";
console.log(`baked agent ${AGENT_ID} started on ${SERVER_NAME} (is-number: ${isNumber(42)})`);

function beat() {
  const data = { agent_id: AGENT_ID, server_name: SERVER_NAME, pid: process.pid, baked: isNumber("7"),
                 at: new Date().toISOString() };
  fs.writeFileSync(heartbeat + ".tmp", JSON.stringify(data) + "\n");
  fs.renameSync(heartbeat + ".tmp", heartbeat);
}
beat();
setInterval(beat, 5000);
process.on("SIGTERM", () => process.exit(0));
