"""The bundle digest: the same tree gives the same 43-character label value however it is stored (directory or
.tar.gz, any mtimes, any listing order); any change of content, executable bit, path or link target changes it."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from imagekit.bundledigest import LENGTH, digest, of_entries
from imagekit.errors import InputError

LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")  # Hetzner's rule for label values


def tree(root: Path) -> Path:
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "index.js").write_text("console.log('hi')\n")
    (root / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "node_modules" / ".bin").mkdir()
    os.symlink("../dep/index.js", root / "node_modules" / ".bin" / "dep")
    return root


def test_same_tree_same_digest_whatever_the_mtimes(tmp_path):
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    os.utime(b / "index.js", (0, 0))
    assert digest(a) == digest(b)
    assert len(digest(a)) == LENGTH and LABEL_VALUE.fullmatch(digest(a))


def test_a_tar_gz_of_the_tree_has_the_directory_s_digest(tmp_path):
    src = tree(tmp_path / "src")
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(src.rglob("*"), reverse=True):  # another order, files before their directories
            tar.add(item, arcname=f"./{item.relative_to(src)}", recursive=False)
    assert digest(archive) == digest(src)


@pytest.mark.parametrize("change", ["content", "mode", "link", "rename", "empty_dir"])
def test_every_change_of_the_tree_changes_the_digest(tmp_path, change):
    root = tree(tmp_path / "t")
    before = digest(root)
    if change == "content":
        (root / "index.js").write_text("console.log('ho')\n")
    elif change == "mode":
        (root / "index.js").chmod(0o755)
    elif change == "link":
        (root / "node_modules" / ".bin" / "dep").unlink()
        os.symlink("../dep/other.js", root / "node_modules" / ".bin" / "dep")
    elif change == "rename":
        (root / "run.sh").rename(root / "start.sh")
    else:
        (root / "logs").mkdir()
    assert digest(root) != before


def test_a_link_is_hashed_as_a_link_not_followed(tmp_path):
    root = tree(tmp_path / "t")
    outside = tmp_path / "secret"
    outside.write_text("one")
    os.symlink(outside, root / "escape")
    before = digest(root)
    outside.write_text("two")
    assert digest(root) == before


def test_every_digest_is_a_label_value():
    for n in range(2000):  # the first character of a plain base64url sha256 is `-` or `_` one time in 32
        value = of_entries({f"f{n}": ("f", b"")})
        assert len(value) == LENGTH and LABEL_VALUE.fullmatch(value), value


def test_not_a_bundle_is_refused_naming_it(tmp_path):
    (tmp_path / "x.zip").write_text("")
    with pytest.raises(InputError, match="x.zip"):
        digest(tmp_path / "x.zip")


def test_the_packed_bundle_provisioning_sends_has_the_tree_s_digest(tmp_path):
    from imagekit import agentconf, profiles
    from imagekit.bundledigest import of_archive, of_bundle

    root = tree(tmp_path / "t")
    packed = agentconf.bundle(root, profiles.load("agent"))
    assert of_bundle(packed) == of_archive(packed.data()) == digest(root)
    assert of_bundle(packed) == digest(root)  # read again: the bundle's own reads are by offset


def test_an_archives_hard_link_inside_the_bundle_is_digested_by_its_target(tmp_path):
    """tar stores a second name of a file as a hard link member: digested (by the name it links to), not refused."""
    def archive(name: str, target: str) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("index.js")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"js\n"))
            link = tarfile.TarInfo("again.js")
            link.type, link.linkname = tarfile.LNKTYPE, target
            tar.addfile(link)
        return path

    same = digest(archive("a.tar.gz", "index.js"))
    assert len(same) == LENGTH and same == digest(archive("b.tar.gz", "index.js"))
    assert same != digest(archive("c.tar.gz", "other.js"))
