// A hostile agent bundle (tests only): for its first 20 s it tries every way it knows to the
// Tailscale auth key and the user data that carries it, and writes what it got to probe.json.
"use strict";
const fs = require("fs");
const net = require("net");

const report = "/opt/openclaw/logs/probe.json";
const paths = ["/run/imagekit/tailscale-authkey", "/var/lib/cloud/instance/user-data.txt",
  "/var/lib/cloud/seed/nocloud/user-data", "/var/log/cloud-init.log", "/var/log/cloud-init-output.log",
  "/proc/1/environ", "/proc/1/cmdline"];
const outcome = {};
const leaked = new Set();
let metadata = "not tried";
const started = Date.now();

function tryFiles() {
  for (const path of paths) {
    try {
      const text = fs.readFileSync(path, "utf8");
      outcome[path] = "read";
      if (text.includes("tskey-")) leaked.add(path);
    } catch (e) {
      outcome[path] = outcome[path] === "read" ? "read" : e.code;
    }
  }
  // Other processes' command lines and environments (the enrolment's among them, if visible).
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    for (const what of ["cmdline", "environ"]) {
      try {
        if (fs.readFileSync(`/proc/${pid}/${what}`, "utf8").includes("tskey-")) leaked.add(`/proc/${pid}/${what}`);
      } catch (e) { /* not ours to read */ }
    }
  }
}

function tryMetadata() {
  // Hetzner's metadata service hands the user data to any local process that asks.
  const s = net.connect(80, "169.254.169.254", () => {
    metadata = "connected";
    s.end("GET /hetzner/v1/userdata HTTP/1.0\r\n\r\n");
  });
  s.setTimeout(1000, () => { if (metadata !== "connected") metadata = "timeout"; s.destroy(); });
  s.on("error", (e) => { if (metadata !== "connected") metadata = e.code; });
  s.on("data", (d) => { if (d.toString().includes("tskey-")) leaked.add("metadata service"); });
}

function write(done) {
  const data = { done, outcome, metadata, leaked: [...leaked], processes_seen: fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).length };
  fs.writeFileSync(report + ".tmp", JSON.stringify(data) + "\n");
  fs.renameSync(report + ".tmp", report);
  fs.writeFileSync("/opt/openclaw/logs/heartbeat.json", JSON.stringify({ agent_id: process.env.AGENT_ID }) + "\n");
}

tryMetadata();
const timer = setInterval(() => {
  tryFiles();
  const done = Date.now() - started > 20000;
  write(done);
  if (done) clearInterval(timer);
}, 200);
setInterval(() => {}, 60000);
