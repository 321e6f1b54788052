"""Cloud-init user data for agent hosts, rendered from ``cloudinit/`` in one place, from the configuration an
agent host is told (``agentconf``): provisioning and ``render-cloud-init`` alike. The agent's code travels in it
only when it fits the API's 32 KiB limit (``fits``); otherwise the host waits for imagekit to stage the code over
SSH. The limit is checked before anything is created, and the one secret the user data carries (the Tailscale
auth key) can be masked for printing."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import jinja2

from .. import agentconf, profiles, tailnet
from ..agentbundle import Bundle
from ..agentconf import AgentConfig, AgentConfigError
from ..data import path as data_path
from ..errors import InputError
from ..host import hostkey

LIMIT = 32 * 1024  # Hetzner's user_data limit, in bytes
MASK = "MASKED (a single-use Tailscale auth key, minted for each agent at provisioning time)"
# A real key is as long as this one: the size check made with it holds for the real key.
PLACEHOLDER_KEY = "tskey-auth-" + "x" * 60


def render(cfg: AgentConfig, code: bytes | None, code_baked: bool = False) -> str:
    """The user data, with the agent's ``code`` (a .tar.gz) or, without it, for a host whose code imagekit stages
    over SSH (``cfg.over_ssh``) or whose snapshot holds it (``code_baked``); over the API's limit (with the host key
    the create step adds) is an error naming the agent and the fix."""
    assert code is not None or cfg.over_ssh or code_baked, "a host whose code is not in its user data waits for " \
        "imagekit"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(data_path("cloudinit")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    text = env.get_template("agent.yaml.j2").render(
        agent_id=cfg.agent_id, server_name=cfg.server_name, mode=cfg.mode, deployment=cfg.deployment,
        stage=agentconf.STAGE, agent_env=agentconf.agent_env(cfg),
        bundle_b64=base64.b64encode(code).decode() if code is not None else None, code_baked=code_baked,
        configure_script=agentconf.configure_script(cfg.profile), metadata=agentconf.metadata(cfg),
        tailscale=cfg.auth_key is not None, auth_key=cfg.auth_key or "",
        tags=",".join(cfg.tags), standin_apt_source=cfg.standin_apt_source or "", over_ssh=cfg.over_ssh)
    size = len(text.encode()) + hostkey.user_data_bytes()
    if size > LIMIT:
        raise AgentConfigError(f"the user data of agent {cfg.agent_id} is {size} bytes, over the API's limit of "
                               f"{LIMIT}" + (": the agent bundle is too large to travel in it (without --no-wait "
                                             "imagekit stages it over SSH)" if code is not None else ""))
    return text


def fits(cfg: AgentConfig, code: Bundle) -> bool:
    """Whether ``code`` can travel in the agent's user data (else it is staged over SSH once the host boots)."""
    if code.size * 4 // 3 > LIMIT:  # its base64 alone is over the limit: not read into memory
        return False
    try:
        render(cfg, code.data())
    except AgentConfigError:
        return False
    return True


def render_for_operator(agent_id: str, *, mode: str, local: bool, api_url: str | None, tailscale: bool,
                        agent_bundle: Path | None, profile: str = "agent") -> str:
    """What ``provision`` would send for ``agent_id``, with the auth key masked; creates nothing. A bundle that does
    not fit is left out, as provision leaves it out (it stages it over SSH)."""
    if mode not in ("snapshot", "fallback"):
        raise InputError(f"--mode {mode!r}: choose snapshot or fallback")
    prof = profiles.load(profile)
    tailscale = tailscale and prof.tailscale
    cfg = agentconf.agent_config(prof, agent_id, api_url=agentconf.agents_api_url(api_url, local), mode=mode,
                                 deployment="<deployment id>", image="<image id>",
                                 tags=tailnet.tags() if tailscale else (), auth_key=MASK if tailscale else None,
                                 local=local)
    code = agentconf.bundle(agent_bundle, prof)
    if fits(cfg, code):
        return render(cfg, code.data())
    return render(dataclasses.replace(cfg, over_ssh=True), None)
