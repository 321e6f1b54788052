"""A real agent's size for the end-to-end tests: ~50 MB in ~5 000 files, node_modules-like with relative links
inside (``.bin`` entries, nested dependencies, a package reached through a link), random bytes so the packed size
is honest (it does not compress). Its index.js is the example agent that first requires a module through a link
and logs the bundle's token: the journal proves the service runs this code. ``on_host`` says what a host has in
its code directory, in the form ``tree`` gives for the generated one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from imagekit.data import path as data_path

PACKAGES = 250
FILES_PER_PACKAGE = 18  # with package.json and index.js: 20 a package, 5 000 in all
FILE_BYTES = 11_000  # 50 MB in all


def make(top: Path, token: str) -> Path:
    """The bundle in ``top`` (made), its agent logging ``bundle token <token>`` at start."""
    modules = top / "node_modules"
    (modules / ".bin").mkdir(parents=True)
    for i in range(PACKAGES):
        pkg = modules / f"pkg-{i:03d}"
        (pkg / "lib").mkdir(parents=True)
        (pkg / "package.json").write_text(f'{{"name": "pkg-{i:03d}", "version": "1.0.{i}", "main": "index.js"}}\n')
        (pkg / "index.js").write_text("module.exports = require('./lib/part-00.js');\n")
        for j in range(FILES_PER_PACKAGE):
            (pkg / "lib" / f"part-{j:02d}.js").write_bytes(os.urandom(FILE_BYTES))
        if i % 10 == 0:  # a command, as npm links them
            (modules / ".bin" / f"pkg-{i:03d}").symlink_to(f"../pkg-{i:03d}/index.js")
        if i % 25 == 1:  # a nested dependency resolved to a sibling
            (pkg / "node_modules").mkdir()
            (pkg / "node_modules" / "pkg-000").symlink_to("../../pkg-000")
    marker = modules / "marker-real"
    marker.mkdir()
    (marker / "index.js").write_text(f"module.exports = {{ token: {token!r} }};\n")
    (modules / "marker").symlink_to("marker-real")
    example = data_path("example_agent", "index.js").read_text()
    (top / "index.js").write_text(f"console.log('bundle token ' + require('./node_modules/marker').token);\n{example}")
    return top


# The tree as `find` sees it on the host: each entry's type, path and link target, then each file's sha256.
TREE = ("cd /opt/openclaw/agent && find . -mindepth 1 -printf '%y %P %l\\n' | LC_ALL=C sort | sha256sum | cut -c1-64 "
        "&& find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64")


def tree(top: Path) -> str:
    """What ``TREE`` prints for the code unpacked from ``top``."""
    entries, files = [], []
    for folder, dirs, names in os.walk(top):
        for name in dirs + names:
            full = Path(folder, name)
            rel = str(full.relative_to(top))
            if full.is_symlink():
                entries.append(f"l {rel} {os.readlink(full)}")
            elif full.is_dir():
                entries.append(f"d {rel} ")
            else:
                entries.append(f"f {rel} ")
                files.append(rel)
    listing = hashlib.sha256("".join(f"{e}\n" for e in sorted(entries, key=str.encode)).encode()).hexdigest()
    sums = "".join(f"{hashlib.sha256((top / rel).read_bytes()).hexdigest()}  {rel}\n"
                   for rel in sorted(files, key=str.encode))
    return f"{listing}\n{hashlib.sha256(sums.encode()).hexdigest()}"


def runs_it(token: str) -> str:
    """A host command: the service's state, then whether its journal shows this bundle's token."""
    return (f"systemctl is-active openclaw-agent; journalctl -u openclaw-agent --no-pager -o cat | "
            f"grep -c 'bundle token {token}'")
