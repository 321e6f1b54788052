"""Cloud-init user data for agent hosts, rendered from ``cloudinit/`` with Jinja2 in one place.

Checks the API's 32 KiB limit before anything is created, and can mask the one secret it
carries (the Tailscale auth key) for ``render-cloud-init``.
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "cloudinit"
EXAMPLE_AGENT = Path(__file__).with_name("example_agent")
LIMIT = 32 * 1024  # Hetzner's user_data limit, in bytes
STAGE = "/var/lib/imagekit/agent"
MASK = "MASKED (a single-use Tailscale auth key, minted for each agent at provisioning time)"
_URL = re.compile(r"https?://[^\s\"'\\`$]+")


class UserDataError(ValueError):
    pass


@dataclass(frozen=True)
class AgentConfig:
    agent_id: str
    server_name: str
    api_url: str
    mode: str  # snapshot | fallback
    deployment: str
    image: str
    tags: tuple[str, ...] = ()
    auth_key: str | None = None  # None: no Tailscale enrolment
    standin_apt_source: str | None = None  # the local cloud's Tailscale stand-in repository


def bundle(path: Path | None) -> bytes:
    """The agent bundle as .tar.gz bytes: a directory is packed (reproducibly), a .tar.gz taken as is."""
    path = Path(path) if path else EXAMPLE_AGENT
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return path.read_bytes()
    if not path.is_dir():
        raise UserDataError(f"agent bundle {path} is neither a directory nor a .tar.gz file: "
                            "pass --agent-bundle DIR|FILE.tar.gz (default: the example agent)")
    if not (path / "index.js").is_file():
        raise UserDataError(f"agent bundle {path} has no index.js (the service runs /opt/openclaw/agent/index.js)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for item in sorted(path.rglob("*")):
            info = tar.gettarinfo(str(item), arcname=str(item.relative_to(path)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if item.is_file():
                with open(item, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def check_api_url(url: str) -> str:
    if not _URL.fullmatch(url or ""):
        raise UserDataError(f"API URL {url!r} is not a plain http(s) URL: set AURA_API_URL or --api-url "
                            "(e.g. https://api.example.com)")
    return url


def render(cfg: AgentConfig, agent_bundle: bytes, *, masked: bool = False) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    agent_env = "".join(f"{k}={v}\n" for k, v in {
        "AGENT_ID": cfg.agent_id, "SERVER_NAME": cfg.server_name, "API_URL": check_api_url(cfg.api_url),
        "DEPLOYMENT_ID": cfg.deployment, "PROVISION_MODE": cfg.mode, "NODE_ENV": "production"}.items())
    text = env.get_template("agent.yaml.j2").render(
        agent_id=cfg.agent_id, server_name=cfg.server_name, mode=cfg.mode, deployment=cfg.deployment,
        stage=STAGE, agent_env=agent_env, bundle_b64=base64.b64encode(agent_bundle).decode(),
        configure_script=(TEMPLATES / "configure-agent.sh").read_text().replace("@STAGE@", STAGE),
        metadata={"agent_id": cfg.agent_id, "server_name": cfg.server_name, "mode": cfg.mode,
                  "deployment": cfg.deployment, "image": cfg.image, "provisioned_at": "@NOW@"},
        tailscale=cfg.auth_key is not None, auth_key=MASK if masked else (cfg.auth_key or ""),
        tags=",".join(cfg.tags), standin_apt_source=cfg.standin_apt_source or "")
    return text


def check_size(text: str, agent_id: str) -> None:
    size = len(text.encode())
    if size > LIMIT:
        raise UserDataError(f"the user data of agent {agent_id} is {size} bytes, over the API's limit of {LIMIT}: "
                            "the agent bundle is too large to travel in it; make the bundle smaller "
                            "(--agent-bundle) or ship the code in the snapshot")
