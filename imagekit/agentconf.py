"""What an agent host is told: its identity (``agent.env``), the record of its provisioning, its code (the agent
bundle) and the script that installs them, as one configuration. Cold hosts get it in their user data
(``provision.userdata``; the code too when it fits there), claimed pool hosts and roll replacements over SSH
(``stage_archive``); code that does not fit in user data, and ``update``'s, travels over SSH (``stage_code``): one
definition below provisioning, the pool and the fleet commands."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from . import agentbundle, agentid, settings
from .agentbundle import Bundle
from .data import path as data_path
from .errors import InputError
from .host import ssh
from .profiles import Profile

STAGE = "/var/lib/imagekit/agent"
# The host's own configure script: installs what is staged (the code replaces only what was there) and (re)starts
# the profile's service.
CONFIGURE = "/usr/local/sbin/imagekit-configure-agent"
LOCAL_API_URL = "http://127.0.0.1:3000"  # placeholder on the local cloud: the example agent only logs it
_URL = re.compile(r"https?://[^\s\"'\\`$]+")


class AgentConfigError(InputError):
    """An agent's configuration cannot be made (a bad API URL, a bad bundle, user data over the limit)."""


@dataclass(frozen=True)
class AgentConfig:
    profile: Profile
    agent_id: str
    server_name: str
    api_url: str
    mode: str  # snapshot | fallback | pool
    deployment: str
    image: str
    tags: tuple[str, ...] = ()
    auth_key: str | None = None  # None: no Tailscale enrolment
    standin_apt_source: str | None = None  # the local cloud's Tailscale stand-in repository
    # The agent waits for imagekit, which configures it over SSH: its secrets (never in the user data), or
    # the code and secrets a roll carries over from the host it replaces.
    over_ssh: bool = False


def agent_config(profile: Profile, agent_id: str, *, api_url: str, mode: str, deployment: str, image: str,
                 tags: tuple[str, ...], auth_key: str | None, local: bool, over_ssh: bool = False,
                 ipv4: bool = True) -> AgentConfig:
    """The one way an agent's configuration is made (provisioning, pool claims, rolls and render-cloud-init)."""
    from localcloud.client import guest_apt_source

    return AgentConfig(profile=profile, agent_id=agent_id, server_name=agentid.server_name(agent_id),
                       api_url=check_api_url(api_url), mode=mode, deployment=deployment, image=image, tags=tags,
                       auth_key=auth_key, standin_apt_source=guest_apt_source(ipv4) if local else None,
                       over_ssh=over_ssh)


def agents_api_url(given: str | None, local: bool) -> str:
    """The agents' API: --api-url, else AURA_API_URL; on the local cloud a placeholder the example agent logs."""
    url = settings.choose(given, "AURA_API_URL") or (LOCAL_API_URL if local else "")
    if not url:
        raise InputError("the agents' API URL is not set: set AURA_API_URL or pass --api-url")
    return check_api_url(url)


def check_api_url(url: str) -> str:
    if not _URL.fullmatch(url or ""):
        raise AgentConfigError(f"API URL {url!r} is not a plain http(s) URL: set AURA_API_URL or --api-url "
                               "(e.g. https://api.example.com)")
    return url


def bundle(path: Path | None, profile: Profile) -> Bundle:
    """The agent bundle, checked whole (agentbundle) and holding the profile's entrypoint; without one, the
    profile's example bundle."""
    found = agentbundle.load(Path(path) if path else data_path(profile.example_bundle))
    found.require(profile.entrypoint, f"the {profile.name} profile's service runs {profile.code_dir}/"
                                      f"{profile.entrypoint}")
    return found


def _stage_command(sha256: str) -> str:
    """Receive a bundle on stdin beside the staged files, and put it in place only once its sha256 is the one
    sent: a cut connection or a damaged stream never reaches the configure script."""
    return (f"set -e; umask 077; mkdir -p {STAGE}; part=$(mktemp {STAGE}/.bundle.XXXXXX); cat > \"$part\"; "
            f"got=$(sha256sum < \"$part\" | cut -d' ' -f1); if [ \"$got\" != {sha256} ]; then rm -f \"$part\"; "
            f"echo \"the agent bundle arrived with sha256 $got, not {sha256} as sent: nothing was replaced\" >&2; "
            f"exit 1; fi; mv -f \"$part\" {STAGE}/bundle.tar.gz")


def stage_code(conn: paramiko.SSHClient, code: Bundle, where: str) -> float:
    """The bundle streamed over ``conn`` (tar.gz on the SSH channel, a chunk at a time) into the staging
    directory, checked there; the seconds it took. Provisioning, pool claims, ``update`` and rolls stage code
    this one way; the host's configure script then installs it."""
    t0 = time.monotonic()
    ssh.must(conn, _stage_command(code.sha256), f"staging the agent bundle ({code.size} bytes) on {where}",
             stdin=code.chunks(), timeout=300)
    return time.monotonic() - t0


def agent_env(cfg: AgentConfig) -> str:
    """The agent's identity, as its unit reads it (``agent.env``); no secret."""
    return "".join(f"{k}={v}\n" for k, v in {
        "AGENT_ID": cfg.agent_id, "SERVER_NAME": cfg.server_name, "API_URL": cfg.api_url,
        "DEPLOYMENT_ID": cfg.deployment, "PROVISION_MODE": cfg.mode, "NODE_ENV": "production"}.items())


def metadata(cfg: AgentConfig) -> dict[str, str]:
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


def stage_archive(cfg: AgentConfig) -> bytes:
    """What the user data stages but the code, as a .tar.gz for a host that is configured over SSH instead (a
    pool host): ``agent.env`` and ``provisioned.json`` (root-only), and the configure script; ``stage_code``
    follows."""
    files = {"agent.env": agent_env(cfg).encode(), "provisioned.json": json.dumps(metadata(cfg)).encode(),
             "imagekit-configure-agent": configure_script(cfg.profile).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
