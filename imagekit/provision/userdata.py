"""Cloud-init user data for agent hosts, rendered from ``cloudinit/`` in one place.

One factory (``agent_config``) serves provisioning and ``render-cloud-init`` alike. The API's
32 KiB limit is checked before anything is created, and the one secret the user data carries
(the Tailscale auth key) can be masked for printing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import agentid, profiles
from ..data import path as data_path
from ..errors import InputError
from ..profiles import Profile

LIMIT = 32 * 1024  # Hetzner's user_data limit, in bytes
STAGE = "/var/lib/imagekit/agent"
# New code for a configured host, over SSH (the bundle on stdin): staged, then installed and started by the
# host's own configure script, which replaces only what is staged.
STAGE_AND_CONFIGURE = f"mkdir -p {STAGE} && cat > {STAGE}/bundle.tar.gz && /usr/local/sbin/imagekit-configure-agent"
MASK = "MASKED (a single-use Tailscale auth key, minted for each agent at provisioning time)"
# A real key is as long as this one: the size check made with it holds for the real key.
PLACEHOLDER_KEY = "tskey-auth-" + "x" * 60
_URL = re.compile(r"https?://[^\s\"'\\`$]+")


class UserDataError(InputError):
    pass


@dataclass(frozen=True)
class AgentConfig:
    profile: Profile
    agent_id: str
    server_name: str
    api_url: str
    mode: str  # snapshot | fallback
    deployment: str
    image: str
    tags: tuple[str, ...] = ()
    auth_key: str | None = None  # None: no Tailscale enrolment
    standin_apt_source: str | None = None  # the local cloud's Tailscale stand-in repository
    # The agent waits for imagekit, which configures it over SSH: its secrets (never in the user data), or
    # the code and secrets a roll carries over from the host it replaces.
    over_ssh: bool = False


def agent_config(profile: Profile, agent_id: str, *, api_url: str, mode: str, deployment: str, image: str,
                 tags: tuple[str, ...], auth_key: str | None, local: bool, over_ssh: bool = False) -> AgentConfig:
    """The one way an agent's configuration is made (provisioning, and render-cloud-init)."""
    from localcloud.client import GUEST_APT_SOURCE

    return AgentConfig(profile=profile, agent_id=agent_id, server_name=agentid.server_name(agent_id),
                       api_url=check_api_url(api_url), mode=mode, deployment=deployment, image=image, tags=tags,
                       auth_key=auth_key,
                       standin_apt_source=GUEST_APT_SOURCE if local else None, over_ssh=over_ssh)


def bundle(path: Path | None, profile: Profile) -> bytes:
    """The agent bundle as .tar.gz bytes: a directory is packed (reproducibly), a .tar.gz taken as is; without
    one, the profile's example bundle."""
    path = Path(path) if path else data_path(profile.example_bundle)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return path.read_bytes()
    if not path.is_dir():
        raise UserDataError(f"agent bundle {path} is neither a directory nor a .tar.gz file: "
                            "pass --agent-bundle DIR|FILE.tar.gz (default: the profile's example bundle)")
    if not (path / profile.entrypoint).is_file():
        raise UserDataError(f"agent bundle {path} has no {profile.entrypoint} (the {profile.name} profile's service "
                            f"runs {profile.code_dir}/{profile.entrypoint})")
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


def agent_env(cfg: AgentConfig) -> str:
    """The agent's identity, as its unit reads it (``agent.env``); no secret."""
    return "".join(f"{k}={v}\n" for k, v in {
        "AGENT_ID": cfg.agent_id, "SERVER_NAME": cfg.server_name, "API_URL": cfg.api_url,
        "DEPLOYMENT_ID": cfg.deployment, "PROVISION_MODE": cfg.mode, "NODE_ENV": "production"}.items())


def metadata(cfg: AgentConfig) -> dict:
    """What ``provisioned_at`` records (the host's configure script stamps the time)."""
    return {"agent_id": cfg.agent_id, "server_name": cfg.server_name, "mode": cfg.mode,
            "deployment": cfg.deployment, "image": cfg.image, "provisioned_at": "@NOW@"}


def configure_script(profile: Profile) -> str:
    """The host's own ``imagekit-configure-agent``: installs what is staged and (re)starts the profile's service."""
    script = data_path("cloudinit", "configure-agent.sh").read_text()
    for key, value in {"STAGE": STAGE, "USER": profile.user, "SERVICE": profile.service, "CODE_DIR": profile.code_dir,
                       "ENV_FILE": profile.env_file, "PROVISIONED_AT": profile.provisioned_at}.items():
        script = script.replace(f"@{key}@", value)
    return script


def stage_archive(cfg: AgentConfig, agent_bundle: bytes) -> bytes:
    """What the user data stages, as a .tar.gz for a host that is configured over SSH instead (a pool host):
    ``agent.env``, ``provisioned.json`` and ``bundle.tar.gz`` (root-only), and the configure script."""
    files = {"agent.env": agent_env(cfg).encode(), "provisioned.json": json.dumps(metadata(cfg)).encode(),
             "bundle.tar.gz": agent_bundle, "imagekit-configure-agent": configure_script(cfg.profile).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def render(cfg: AgentConfig, agent_bundle: bytes) -> str:
    """The user data; over the API's limit is an error naming the agent and the fix."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(data_path("cloudinit")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    text = env.get_template("agent.yaml.j2").render(
        agent_id=cfg.agent_id, server_name=cfg.server_name, mode=cfg.mode, deployment=cfg.deployment,
        stage=STAGE, agent_env=agent_env(cfg), bundle_b64=base64.b64encode(agent_bundle).decode(),
        configure_script=configure_script(cfg.profile), metadata=metadata(cfg),
        tailscale=cfg.auth_key is not None, auth_key=cfg.auth_key or "",
        tags=",".join(cfg.tags), standin_apt_source=cfg.standin_apt_source or "", over_ssh=cfg.over_ssh)
    size = len(text.encode())
    if size > LIMIT:
        raise UserDataError(f"the user data of agent {cfg.agent_id} is {size} bytes, over the API's limit of "
                            f"{LIMIT}: the agent bundle is too large to travel in it; make the bundle smaller "
                            "(--agent-bundle) or ship the code in the snapshot")
    return text


def render_for_operator(agent_id: str, *, mode: str, local: bool, api_url: str | None, tailscale: bool,
                        agent_bundle: Path | None, profile: str = "agent") -> str:
    """What ``provision`` would send for ``agent_id``, with the auth key masked; creates nothing."""
    from .. import tailnet
    from .inputs import agents_api_url

    if mode not in ("snapshot", "fallback"):
        raise InputError(f"--mode {mode!r}: choose snapshot or fallback")
    prof = profiles.load(profile)
    tailscale = tailscale and prof.tailscale
    cfg = agent_config(prof, agent_id, api_url=agents_api_url(api_url, local), mode=mode,
                       deployment="<deployment id>", image="<image id>", tags=tailnet.tags() if tailscale else (),
                       auth_key=MASK if tailscale else None, local=local)
    return render(cfg, bundle(agent_bundle, prof))
