"""Cloud-init user data for agent hosts, rendered from ``cloudinit/`` in one place, from the configuration an
agent host is told (``agentconf``): provisioning and ``render-cloud-init`` alike. The API's 32 KiB limit is
checked before anything is created, and the one secret the user data carries (the Tailscale auth key) can be
masked for printing."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from .. import agentconf, profiles, tailnet
from ..agentconf import AgentConfig, AgentConfigError
from ..data import path as data_path
from ..errors import InputError
from ..host import hostkey

LIMIT = 32 * 1024  # Hetzner's user_data limit, in bytes
MASK = "MASKED (a single-use Tailscale auth key, minted for each agent at provisioning time)"
# A real key is as long as this one: the size check made with it holds for the real key.
PLACEHOLDER_KEY = "tskey-auth-" + "x" * 60


def render(cfg: AgentConfig, agent_bundle: bytes) -> str:
    """The user data; over the API's limit (with the host key the create step adds) is an error naming the agent
    and the fix."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(data_path("cloudinit")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    text = env.get_template("agent.yaml.j2").render(
        agent_id=cfg.agent_id, server_name=cfg.server_name, mode=cfg.mode, deployment=cfg.deployment,
        stage=agentconf.STAGE, agent_env=agentconf.agent_env(cfg),
        bundle_b64=base64.b64encode(agent_bundle).decode(),
        configure_script=agentconf.configure_script(cfg.profile), metadata=agentconf.metadata(cfg),
        tailscale=cfg.auth_key is not None, auth_key=cfg.auth_key or "",
        tags=",".join(cfg.tags), standin_apt_source=cfg.standin_apt_source or "", over_ssh=cfg.over_ssh)
    size = len(text.encode()) + hostkey.user_data_bytes()
    if size > LIMIT:
        raise AgentConfigError(f"the user data of agent {cfg.agent_id} is {size} bytes, over the API's limit of "
                               f"{LIMIT}: the agent bundle is too large to travel in it; make the bundle smaller "
                               "(--agent-bundle) or ship the code in the snapshot")
    return text


def render_for_operator(agent_id: str, *, mode: str, local: bool, api_url: str | None, tailscale: bool,
                        agent_bundle: Path | None, profile: str = "agent") -> str:
    """What ``provision`` would send for ``agent_id``, with the auth key masked; creates nothing."""
    if mode not in ("snapshot", "fallback"):
        raise InputError(f"--mode {mode!r}: choose snapshot or fallback")
    prof = profiles.load(profile)
    tailscale = tailscale and prof.tailscale
    cfg = agentconf.agent_config(prof, agent_id, api_url=agentconf.agents_api_url(api_url, local), mode=mode,
                                 deployment="<deployment id>", image="<image id>",
                                 tags=tailnet.tags() if tailscale else (), auth_key=MASK if tailscale else None,
                                 local=local)
    return render(cfg, agentconf.bundle(agent_bundle, prof))
