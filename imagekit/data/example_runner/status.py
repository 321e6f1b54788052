"""The example runner's status on port 8080 (JSON), and a heartbeat in its work directory every few seconds."""

import json
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEARTBEAT = "/opt/runner/work/heartbeat.json"


def docker_version() -> str | None:
    """The Docker engine's version, as the runner's user sees it (it is in the docker group)."""
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


STATUS = {"agent_id": os.environ["AGENT_ID"], "server_name": os.environ.get("SERVER_NAME"), "pid": os.getpid(),
          "docker": docker_version()}
print(f"imagekit example runner: docker engine {STATUS['docker']}", flush=True)


def beat() -> None:
    while True:
        data = {**STATUS, "at": datetime.now(timezone.utc).isoformat()}
        with open(HEARTBEAT + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(HEARTBEAT + ".tmp", HEARTBEAT)
        time.sleep(5)


class Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(STATUS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


threading.Thread(target=beat, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 8080), Status).serve_forever()
