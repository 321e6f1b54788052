"""A small container image as a ``docker save`` archive, written without Docker (this host has none and the local
cloud's guests reach no registry): what a profile's ``images:`` names on the local cloud, and what the tests and
the bench bake.

The image is one layer holding Debian's ``busybox-static`` binary (``apt-get download``, through the host's own
apt: ~0.9 MB, a statically linked shell and coreutils, so the image really runs commands) with the usual
applet links (``/bin/sh``, ``/bin/cat``, …). The archive is the format ``docker load`` reads: ``manifest.json``,
the config (its ``rootfs.diff_ids`` the layer's sha256) and the layer tar; contents and times are fixed, so two
writes give the same bytes and the same image id.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "busybox-static"
APPLETS = ("sh", "cat", "echo", "ls", "id", "sleep", "env", "true", "false", "mkdir", "wc", "head", "sha256sum")


def busybox_binary(workdir: Path) -> bytes:
    """``/bin/busybox`` of Debian's busybox-static, downloaded once into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        proc = subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, capture_output=True, text=True)
        debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download {PACKAGE} failed: {(proc.stdout + proc.stderr)[-800:]}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), tmp], check=True)
        return (Path(tmp) / "bin" / "busybox").read_bytes()


def write(dest: Path, reference: str, busybox: bytes) -> Path:
    """The archive of image ``reference`` (``name:tag``) at ``dest``."""
    layer = _tar({"bin/busybox": (busybox, 0o755), **{f"bin/{a}": ("busybox", None) for a in APPLETS}},
                 dirs=("bin", "tmp", "work"))
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"imagekit: Debian {PACKAGE}"}],
    }, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_name = f"{diff_id.removeprefix('sha256:')}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [reference], "Layers": [layer_name]}]).encode()
    dest.write_bytes(_tar({"manifest.json": (manifest, 0o644), config_name: (config, 0o644),
                           layer_name: (layer, 0o644)}, dirs=(layer_name.split("/")[0],)))
    return dest


def references(archive: Path) -> list[str]:
    """The image references a ``docker save`` archive holds (its manifest's ``RepoTags``)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError(f"{archive} has no manifest.json: not a `docker save` archive")
        return [tag for image in json.load(member) for tag in image.get("RepoTags") or []]


def _tar(files: dict[str, tuple[bytes | str, int | None]], dirs: tuple[str, ...] = ()) -> bytes:
    """A tar of ``files`` (content and mode, or a link target and None), owned by root, time 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for name, (content, mode) in files.items():
            info = tarfile.TarInfo(name)
            if mode is None:
                assert isinstance(content, str), "a link's target"
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                assert isinstance(content, bytes), "a file's content"
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
