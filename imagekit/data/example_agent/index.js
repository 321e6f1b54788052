// Example OpenClaw agent shipped with imagekit: the default bundle of `invoke provision`,
// small enough to travel in the user data. It proves the service really runs: it logs its
// identity to the journal and writes a heartbeat file every few seconds.
"use strict";
const fs = require("fs");

const { AGENT_ID, SERVER_NAME, API_URL } = process.env;
if (!AGENT_ID) {
  console.error("openclaw example agent: AGENT_ID is not set (is /opt/openclaw/config/agent.env there?)");
  process.exit(1);
}
const heartbeat = "/opt/openclaw/logs/heartbeat.json";
console.log(`openclaw example agent ${AGENT_ID} started on ${SERVER_NAME} (api ${API_URL}, pid ${process.pid})`);

function beat() {
  const data = { agent_id: AGENT_ID, server_name: SERVER_NAME, pid: process.pid, at: new Date().toISOString() };
  fs.writeFileSync(heartbeat + ".tmp", JSON.stringify(data) + "\n");
  fs.renameSync(heartbeat + ".tmp", heartbeat);
}
beat();
setInterval(beat, 5000);
process.on("SIGTERM", () => {
  console.log(`openclaw example agent ${AGENT_ID} stopping`);
  process.exit(0);
});
