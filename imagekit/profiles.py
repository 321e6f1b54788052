"""Image profiles as data: what imagekit knows of a running host of a profile (its unit, its user, where code,
configuration and secrets live, its inbound ports, whether it enrols in Tailscale), read from
``playbooks/profiles/<profile>.yml`` beside the profile's playbook (or an operator's IMAGEKIT_PLAYBOOKS_DIR).
Provisioning, status, update and roll read it here and nowhere else; the playbook is rendered with it as ``host``,
so the host's UFW rules and the profile's Hetzner firewall are one list."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .data import playbooks_dir
from .errors import InputError

_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
_NAME = re.compile(r"[a-z_][a-z0-9_-]*")
PROTOCOLS = ("tcp", "udp")
OPTIONAL = {"bundle", "images"}
ARCHIVE = ".tar"  # an `images:` entry ending so is a `docker save` archive, else a registry reference


class ProfileError(InputError):
    pass


@dataclass(frozen=True)
class Rule:
    protocol: str
    port: str
    description: str

    @property
    def ufw(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class Profile:
    name: str
    service: str
    user: str
    code_dir: str
    config_dir: str
    manifest: str
    entrypoint: str
    command: str
    example_bundle: str
    tailscale: bool
    firewall: tuple[Rule, ...]
    bundle: str | None = None  # agent code baked into the snapshot (a directory or .tar.gz; relative: to this file)
    images: tuple[str, ...] = ()  # container images baked in: registry references, or `docker save` archives (.tar)

    @property
    def env_file(self) -> str:
        return f"{self.config_dir}/agent.env"

    @property
    def secrets_file(self) -> str:
        return f"{self.config_dir}/secrets.env"

    @property
    def provisioned_at(self) -> str:
        return f"{self.config_dir}/provisioned_at"

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.service}.service"

    def data(self) -> dict[str, Any]:
        """As the playbook and the checks see it (``host``), with the derived paths."""
        return {**asdict(self), "firewall": [asdict(r) | {"ufw": r.ufw} for r in self.firewall],
                "env_file": self.env_file, "secrets_file": self.secrets_file, "provisioned_at": self.provisioned_at,
                "unit_file": self.unit_file}


def folder(playbooks: Path | None = None) -> Path:
    return Path(playbooks or playbooks_dir()) / "profiles"


def names(playbooks: Path | None = None) -> list[str]:
    return sorted(p.stem for p in folder(playbooks).glob("*.yml"))


def exists(name: str, playbooks: Path | None = None) -> bool:
    return bool(_NAME.fullmatch(name or "")) and (folder(playbooks) / f"{name}.yml").is_file()


def require(name: str, playbooks: Path | None = None) -> Path:
    """The profile's data file; an unknown profile is an error naming the known ones (an option's check, before a
    command loads the profile once)."""
    if not exists(name, playbooks):
        raise ProfileError(f"unknown profile {name!r}: choose one of {', '.join(names(playbooks)) or 'none'} (a "
                           f"profile is playbooks/<profile>.yml with its data in {folder(playbooks)}/<profile>.yml)")
    return folder(playbooks) / f"{name}.yml"


def load(name: str, playbooks: Path | None = None) -> Profile:
    """The profile's data, checked: an unknown profile or a bad value is an error naming the file and the fix."""
    path = require(name, playbooks)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot be read as YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping of the profile's settings")
    fields = set(Profile.__dataclass_fields__) - {"name"}
    if missing := sorted(fields - OPTIONAL - set(raw)):
        raise ProfileError(f"{path}: missing {', '.join(missing)}")
    if unknown := sorted(set(raw) - fields):
        raise ProfileError(f"{path}: unknown keys {', '.join(unknown)}")
    for key in ("code_dir", "config_dir", "manifest"):
        if not isinstance(raw[key], str) or not _PATH.fullmatch(raw[key]) or ".." in raw[key]:
            raise ProfileError(f"{path}: {key} must be an absolute path of plain characters, got {raw[key]!r}")
    for key in ("service", "user"):
        if not isinstance(raw[key], str) or not _NAME.fullmatch(raw[key]):
            raise ProfileError(f"{path}: {key} must be a plain lower-case name, got {raw[key]!r}")
    rules = []
    for rule in raw["firewall"] or []:
        if not isinstance(rule, dict) or rule.get("protocol") not in PROTOCOLS or \
                not re.fullmatch(r"\d{1,5}(-\d{1,5})?", str(rule.get("port", ""))):
            raise ProfileError(f"{path}: firewall rules need protocol (tcp or udp) and port (N or N-M), got {rule!r}")
        rules.append(Rule(rule["protocol"], str(rule["port"]), str(rule.get("description", ""))))
    if not any(r.protocol == "tcp" and r.port == "22" for r in rules):
        raise ProfileError(f"{path}: the firewall must let SSH in (22/tcp): imagekit configures hosts over SSH")
    bundle, images = raw.get("bundle"), raw.get("images") or []
    if bundle is not None and (not isinstance(bundle, str) or not bundle):
        raise ProfileError(f"{path}: bundle must be the path of a directory or .tar.gz, got {bundle!r}")
    if not isinstance(images, list) or not all(isinstance(i, str) and i and not i.isspace() for i in images):
        raise ProfileError(f"{path}: images must be a list of image references or `docker save` archives (.tar), "
                           f"got {images!r}")
    return Profile(name=name, **{k: raw[k] for k in fields - {"firewall", "tailscale"} - OPTIONAL},
                   tailscale=bool(raw["tailscale"]), firewall=tuple(rules),
                   bundle=str(path.parent / bundle) if bundle else None,
                   images=tuple(str(path.parent / i) if i.endswith(ARCHIVE) else i for i in images))
