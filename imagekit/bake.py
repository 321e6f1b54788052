"""What a build bakes into the snapshot besides its playbooks: the profile's agent code (``bundle:``, or
``build-snapshot --agent-bundle``) installed with its own install step, and its container images (``images:``, or
``--image``) loaded into Docker's storage, so that hosts start with both and pull nothing.

The snapshot says what it holds in labels: ``bundle-digest`` (bundledigest: provisioning with the same code stages
nothing) and one ``baked-image-<sha256 of the reference>`` per image (a reference holds ``/`` and ``:``, which
label values may not), which ``run --container-image`` checks before anything is created. Both are build inputs
(build_inputs): other code or other images make another snapshot.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcloud.images import BoundImage

from . import agentconf, bundledigest
from .bundledigest import BUNDLE_LABEL
from .errors import HostError, InputError
from .host import ssh
from .profiles import ARCHIVE, Profile
from .steps.job import HostJob

IMAGE_LABEL = "baked-image-"
NPM_CACHE = "/var/tmp/imagekit-npm-cache"  # on the builder, while the install step runs (cleaned with /var/tmp)
INSTALL_TIMEOUT = 1800
NPM_RELEASE = "10"  # the npm the local cloud's builders run (its Node.js package has none); runs on Node.js 18+


@dataclass(frozen=True)
class Image:
    reference: str
    archive: Path | None  # a `docker save` archive (where no registry is reachable); None: pulled


@dataclass(frozen=True)
class Bake:
    profile: Profile
    bundle: bytes | None  # .tar.gz
    digest: str | None
    images: tuple[Image, ...]
    npm: bool = False  # the bundle has a package.json and its package-lock.json: its install step is `npm ci`

    def labels(self) -> dict[str, str]:
        return {**({BUNDLE_LABEL: self.digest} if self.digest else {}),
                **{image_label(i.reference): "yes" for i in self.images}}

    def inputs(self) -> dict[str, Any]:
        """As build_inputs hashes it: the code's digest; each image's reference and its archive's content."""
        return {"bundle": self.digest, "images": [[i.reference, _file_sha256(i.archive) if i.archive else None]
                                                  for i in self.images]}


def expectations(b: Bake) -> dict[str, object]:
    """What the image's checks expect of the baked code and images (data/checks/test_image.py)."""
    return {"baked_images": [i.reference for i in b.images],
            **({"baked_code": {"entrypoint": f"{b.profile.code_dir}/{b.profile.entrypoint}", "npm": b.npm}}
               if b.bundle else {})}


def image_label(reference: str) -> str:
    return IMAGE_LABEL + hashlib.sha256(reference.encode()).hexdigest()[:40]


def resolve(profile: Profile, agent_bundle: Path | None, images: list[str], local: bool) -> Bake:
    """The profile's bundle and images (the options' win or add), checked before anything is created."""
    path = agent_bundle or (Path(profile.bundle) if profile.bundle else None)
    checked = agentconf.bundle(path, profile) if path else None
    packed = checked.data() if checked else None  # a build holds it once
    found: list[Image] = []
    for entry in [*profile.images, *images]:
        if entry.endswith(ARCHIVE):
            found += [Image(ref, Path(entry)) for ref in references(Path(entry))]
        elif local:
            raise InputError(f"image {entry}: the local cloud reaches no registry; name a `docker save` archive "
                             f"(.tar) instead")
        else:
            found.append(Image(entry, None))
    return Bake(profile, packed, bundledigest.of_bundle(checked) if checked else None, tuple(found),
                npm=checked is not None and NPM_FILES <= checked.names)


def references(archive: Path) -> list[str]:
    """The image references a ``docker save`` archive holds (its manifest's RepoTags)."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            tags = [t for image in json.load(member) for t in image.get("RepoTags") or []] if member else []
    except (OSError, tarfile.TarError, KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"image archive {archive}: not a `docker save` archive ({exc})") from None
    if not tags:
        raise InputError(f"image archive {archive}: names no image (no RepoTags in its manifest.json); save it "
                         "by name: `docker save NAME:TAG -o FILE.tar`")
    return tags


def require_baked(image: BoundImage, reference: str) -> None:
    """``run --container-image``: the reference must be baked into the snapshot the jobs boot."""
    if (image.labels or {}).get(image_label(reference)) != "yes":
        raise InputError(f"--container-image {reference}: not baked into snapshot {image.id} ({image.description}); "
                         "add it to the profile's `images:` (or `build-snapshot --image`) and build again")


class BakeCode:
    """The bundle into the profile's code directory, owned by its user; its install step (``npm ci``) run as that
    user: against the registry, or on the local cloud offline from a cache filled on this machine."""

    name = "agent code"

    def __init__(self, bake: Bake, local: bool):
        self.bake, self.local = bake, local

    def run(self, s: HostJob) -> None:
        if self.bake.bundle is None:
            return
        assert s.conn is not None, "BakeCode follows WaitSSH"
        p = self.bake.profile
        code, user = shlex.quote(p.code_dir), shlex.quote(p.user)
        ssh.must(s.conn, f"find {code} -mindepth 1 -delete && tar -xzf - -C {code} --no-same-owner && "
                         f"chown -R -h {user}:{user} {code}", f"putting the bundle in {p.code_dir}",
                 stdin=self.bake.bundle)
        if not self.bake.npm:
            return
        cache = _npm_cache(self.bake.bundle) if self.local else None
        prepare = f"rm -rf {NPM_CACHE} && install -d -o {user} -g {user} -m 0700 {NPM_CACHE}"
        npm = "npm"
        if cache:  # npm itself comes in the cache too: the local cloud's Node.js package has none
            prepare += (f" && tar -xzf - -C {NPM_CACHE} --no-same-owner && mkdir {NPM_CACHE}/npm && tar -xzf "
                        f"{NPM_CACHE}/npm.tgz -C {NPM_CACHE}/npm --strip-components=1 && chown -R {user}:{user} "
                        f"{NPM_CACHE}")
            npm = f"/usr/bin/node {NPM_CACHE}/npm/bin/npm-cli.js"
        install = (f"cd {code} && runuser -u {user} -- env HOME={NPM_CACHE} {npm} ci --omit=dev --no-audit "
                   f"--no-fund --cache {NPM_CACHE}{' --offline' if cache else ''}")
        rc, out, err = ssh.run(s.conn, f"{prepare} && {install}; rc=$?; rm -rf {NPM_CACHE}; exit $rc", stdin=cache,
                               timeout=INSTALL_TIMEOUT)
        if rc != 0:
            raise HostError(f"the bundle's install step (npm ci --omit=dev) failed: {(out + err).strip()[-1500:]}")
        s.progress(f"installed the bundle's dependencies (npm ci --omit=dev{', offline' if cache else ''})")


class BakeImages:
    """Each image into Docker's storage: ``docker load`` of its archive, or ``docker pull``; then it must be
    there (``docker image inspect``)."""

    name = "container images"

    def __init__(self, bake: Bake):
        self.bake = bake

    def run(self, s: HostJob) -> None:
        assert s.conn is not None, "BakeImages follows WaitSSH"
        loaded: set[Path] = set()
        for image in self.bake.images:
            if image.archive is not None and image.archive not in loaded:
                ssh.must(s.conn, "docker load", f"loading {image.archive.name}", stdin=image.archive.read_bytes(),
                         timeout=INSTALL_TIMEOUT)
                loaded.add(image.archive)
            elif image.archive is None:
                ssh.must(s.conn, f"docker pull --quiet {shlex.quote(image.reference)}", f"pulling {image.reference}",
                         timeout=INSTALL_TIMEOUT)
            ssh.must(s.conn, f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image.reference)}",
                     f"finding {image.reference} in Docker's storage")
            s.progress(f"baked image {image.reference}")


NPM_FILES = {"package.json", "package-lock.json"}


def _npm_cache(bundle: bytes) -> bytes:
    """npm's cache holding what the bundle's lock file names, and npm itself (``npm.tgz``, release NPM_RELEASE),
    fetched here from the npm registry (the local cloud's guests reach none), as .tar.gz for the builder's
    ``npm ci --offline``."""
    if shutil.which("npm") is None:
        raise InputError("the bundle has a package-lock.json: on the local cloud, npm on this machine fills its "
                         "cache from the npm registry; install npm (apt-get install npm)")
    with tempfile.TemporaryDirectory(prefix="imagekit-npm-") as tmp:
        work, cache = Path(tmp, "bundle"), Path(tmp, "cache")
        work.mkdir()
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            for name in ("package.json", "package-lock.json"):
                member = tar.extractfile(tar.getmember(name) if name in tar.getnames() else f"./{name}")
                assert member is not None, "the bundle holds it (Bake.npm)"
                (work / name).write_bytes(member.read())
        for args in (["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
                     ["pack", f"npm@{NPM_RELEASE}", "--pack-destination", tmp]):
            proc = subprocess.run(["npm", *args, "--cache", str(cache)], cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                raise InputError(f"filling npm's cache for the bundle from the registry failed (npm {args[0]}): "
                                 f"{(proc.stdout + proc.stderr).strip()[-1500:]}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as out:
            out.add(cache / "_cacache", arcname="_cacache")
            out.add(next(Path(tmp).glob("npm-*.tgz")), arcname="npm.tgz")
        return buf.getvalue()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
