#!/usr/bin/python3
"""tailscaled: the imagekit local cloud's STAND-IN for the Tailscale daemon.

Not the real daemon: it creates no tunnel; it only reports this node as seen to the
local cloud's Tailscale stand-in while the node is logged in.
"""
import json
import os
import time
import urllib.request

STATE = os.environ.get("TAILSCALE_STANDIN_STATE", "/var/lib/tailscale/standin-state.json")

print("tailscaled @VERSION@ (imagekit stand-in): no WireGuard tunnel is created", flush=True)
while True:
    try:
        with open(STATE) as f:
            state = json.load(f)
        if state.get("node_id"):
            req = urllib.request.Request(
                state["login_server"].rstrip("/") + "/standin/ping",
                data=json.dumps({"node_id": state["node_id"]}).encode(),
                headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
    except (OSError, ValueError, KeyError):
        pass  # not logged in yet, or the stand-in is unreachable: try again later
    time.sleep(30)
