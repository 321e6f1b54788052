#!/bin/sh
# Example CI runner shipped with imagekit: the default bundle of `invoke provision --profile runner`. A stand-in
# for a real runner agent (whose control plane cannot be reached from here): it says who it is, checks that it may
# drive Docker, and serves its status on port 8080 (the profile's own firewall port).
set -eu
: "${AGENT_ID:?AGENT_ID is not set (is /opt/runner/config/agent.env there?)}"
echo "imagekit example runner $AGENT_ID started on $SERVER_NAME (api $API_URL, pid $$)"
# Not exec: the unit's main process stays this script (what the checks find); systemd stops the whole group.
python3 "$(dirname "$0")/status.py"
