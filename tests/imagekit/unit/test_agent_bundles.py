"""Agent bundles (imagekit.agentbundle): what a host must never get is refused before any cloud call, naming the
path and the fix (not a directory or .tar.gz, links leaving the bundle, set-id bits, device files, FIFOs,
sockets), in a directory and in a .tar.gz alike; a good bundle is packed reproducibly, with relative links kept;
and provision decides whether the code travels in the user data or over SSH (refusing --no-wait when it must go
over SSH) before it creates anything."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile

import pytest
from test_input_checks import API_URL, attempt

from imagekit import agentbundle, agentconf, profiles
from imagekit.agentbundle import BadBundle
from imagekit.errors import ImagekitError
from imagekit.provision import ProvisionOptions, provision
from imagekit.target import Target

NOWHERE = Target("http://127.0.0.1:9/v1", "no-token", local=False)  # nothing answers: a cloud call would fail


def good_tree(top):
    """A node_modules-like tree with relative links inside it."""
    (top / "node_modules" / "dep" / "lib").mkdir(parents=True)
    (top / "node_modules" / ".bin").mkdir()
    (top / "index.js").write_text("require('./node_modules/dep');\n")
    (top / "node_modules" / "dep" / "lib" / "main.js").write_text("module.exports = 1;\n")
    (top / "node_modules" / "dep" / "index.js").symlink_to("lib/main.js")
    (top / "node_modules" / ".bin" / "dep").symlink_to("../dep/lib/main.js")
    (top / "node_modules" / "alias").symlink_to("dep")
    return top


def refused(path) -> str:
    """The error loading ``path`` as a bundle, also through provision (before its first cloud call)."""
    with pytest.raises(BadBundle) as info:
        agentbundle.load(path)
    with pytest.raises(ImagekitError) as through:
        provision(NOWHERE, ProvisionOptions(agent_ids=["a"], api_url=API_URL, tailscale=False, agent_bundle=path),
                  lambda line: None)
    assert str(through.value) == str(info.value)  # the bundle's error, not an unreachable cloud
    return str(info.value)


def test_a_good_tree_is_packed_reproducibly_with_its_links(tmp_path):
    top = good_tree(tmp_path / "b")
    one, two = agentbundle.load(top), agentbundle.load(top)
    assert one.sha256 == two.sha256 == hashlib.sha256(one.data()).hexdigest() and one.size == len(one.data())
    assert {"index.js", "node_modules/dep/lib/main.js"} <= one.names
    with tarfile.open(fileobj=io.BytesIO(one.data())) as tar:
        members = {m.name: m for m in tar}
    assert members["node_modules/.bin/dep"].linkname == "../dep/lib/main.js"
    assert {(m.uid, m.mtime) for m in members.values()} == {(0, 0)}
    assert b"".join(one.chunks()) == one.data()


def test_a_good_archive_is_sent_as_it_is(tmp_path):
    top = good_tree(tmp_path / "b")
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=".")
    found = agentconf.bundle(archive, profiles.load("agent"))
    assert found.data() == archive.read_bytes() and found.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, make", [
    ("missing", lambda p: None),
    ("file.zip", lambda p: p.write_bytes(b"PK")),
])
def test_neither_a_directory_nor_a_tar_gz(tmp_path, name, make):
    make(tmp_path / name)
    message = refused(tmp_path / name)
    assert f"agent bundle {tmp_path / name} is neither a directory nor a .tar.gz" in message
    assert "--agent-bundle DIR|FILE.tar.gz" in message


def test_a_damaged_archive(tmp_path):
    (tmp_path / "b.tar.gz").write_bytes(b"\x1f\x8b not really")
    assert "is not a readable .tar.gz" in refused(tmp_path / "b.tar.gz")


@pytest.mark.parametrize("where, target, said", [
    ("etc", "/etc/shadow", "a link to the absolute path /etc/shadow"),
    ("up", "../outside", "a link to ../outside, which leads outside the bundle"),
    ("node_modules/deep", "../../../x", "a link to ../../../x, which leads outside the bundle"),
    # each link alone stays inside, but followed through the first the second leaves
    ("node_modules/chain", "hop/../..", "a link to hop/../.., which leads outside the bundle"),
])
def test_links_that_leave_the_bundle(tmp_path, where, target, said):
    top = good_tree(tmp_path / "b")
    (top / "node_modules" / "hop").symlink_to("..")  # node_modules/hop -> the bundle's top: inside
    (top / where).symlink_to(target)
    message = refused(top)
    assert f"agent bundle {top}/{where} is {said}" in message and "make it" in message
    assert "node_modules/hop" not in message  # the link that stays inside is fine


@pytest.mark.parametrize("bit", [stat.S_ISUID, stat.S_ISGID])
def test_set_id_bits(tmp_path, bit):
    top = good_tree(tmp_path / "b")
    tool = top / "node_modules" / "dep" / "lib" / "main.js"
    tool.chmod(0o755 | bit)
    message = refused(top)
    assert f"agent bundle {tool} has a set-user-ID or set-group-ID bit" in message and "chmod u-s,g-s" in message


def test_a_fifo_and_a_socket(tmp_path):
    top = good_tree(tmp_path / "b")
    os.mkfifo(top / "pipe")
    assert f"agent bundle {top}/pipe is a FIFO" in refused(top)
    os.unlink(top / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(top / "sock"))
        assert f"agent bundle {top}/sock is a socket" in refused(top)
    finally:
        sock.close()


def test_a_device_file(tmp_path):
    top = good_tree(tmp_path / "b")
    try:
        os.mknod(top / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device file needs root")
    message = refused(top)
    assert f"agent bundle {top}/null is a device file" in message and "remove it from the bundle" in message


def archive_with(tmp_path, *members: tarfile.TarInfo):
    """A .tar.gz holding index.js and ``members``."""
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        index = tarfile.TarInfo("./index.js")
        index.size = 3
        tar.addfile(index, io.BytesIO(b"1;\n"))
        for m in members:
            tar.addfile(m, io.BytesIO(b"") if m.isreg() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


@pytest.mark.parametrize("bad, said", [
    (member("../evil.js"), "member ../evil.js would be written outside the bundle"),
    (member("/etc/cron.d/x"), "member /etc/cron.d/x would be written outside the bundle"),
    (member("./lib", tarfile.SYMTYPE, "/usr/lib"), "member ./lib is a link to the absolute path /usr/lib"),
    (member("a/b", tarfile.SYMTYPE, "../../x"), "member a/b is a link to ../../x, which leads outside"),
    (member("hard", tarfile.LNKTYPE, "../../etc/shadow"), "member hard is a hard link to ../../etc/shadow"),
    (member("tool", mode=0o4755), "member tool has a set-user-ID or set-group-ID bit"),
    (member("dev", tarfile.CHRTYPE), "member dev is a device file"),
    (member("fifo", tarfile.FIFOTYPE), "member fifo is a FIFO"),
])
def test_bad_members_of_an_archive(tmp_path, bad, said):
    path = archive_with(tmp_path, bad)
    assert f"agent bundle {path}: {said}" in refused(path)


def test_no_wait_is_refused_for_code_that_must_travel_over_ssh(api, clean_settings, tmp_path):
    """Code that does not fit in the user data goes over SSH once the host boots; --no-wait skips SSH, so it is
    refused before anything exists, naming the fix. With waiting, the same bundle is planned to be staged."""
    from api_records import add_snapshot

    from imagekit.cloud import api as cloudapi
    from imagekit.host.keys import new_ed25519
    from imagekit.provision.plan import make_plan

    top = tmp_path / "big"
    top.mkdir()
    (top / "index.js").write_text("// " + os.urandom(40_000).hex())  # random bytes do not compress
    client = cloudapi.connect(api.target)
    key = client.ssh_keys.create(name="bundle-test", public_key=new_ed25519().public_openssh)
    clean_settings.setenv("HETZNER_SSH_KEY_ID", str(key.id))
    try:
        snapshot = str(add_snapshot(api.cloud, profile="bundle-test"))
        options = ProvisionOptions(agent_ids=["big-1"], api_url=API_URL, tailscale=False, agent_bundle=top,
                                   snapshot=snapshot, wait=False)
        message = attempt(api, options)
        assert f"the agent bundle {top} (" in message and "drop --no-wait" in message, message
        options.wait = True
        plan = make_plan(api.target, client, options, "d1", lambda line: None)
        assert plan.stage_code and plan.over_ssh and plan.inline_code() is None
        small = make_plan(api.target, client, ProvisionOptions(agent_ids=["small-1"], api_url=API_URL,
                                                               tailscale=False, snapshot=snapshot), "d2",
                          lambda line: None)
        assert not small.stage_code and not small.over_ssh and small.inline_code() is not None
    finally:
        key.delete()


def test_render_cloud_init_leaves_out_code_too_large_for_the_user_data(tmp_path, clean_settings):
    """What provision would send: a small bundle inside the user data, which starts the agent; a large one left
    out (provision stages it over SSH), the host told to wait for imagekit."""
    from imagekit.provision import render_for_operator

    top = tmp_path / "big"
    top.mkdir()
    (top / "index.js").write_text("// " + os.urandom(40_000).hex())
    small = render_for_operator("r-1", mode="snapshot", local=False, api_url=API_URL, tailscale=False,
                                agent_bundle=None)
    big = render_for_operator("r-1", mode="snapshot", local=False, api_url=API_URL, tailscale=False,
                              agent_bundle=top)
    assert "path: /var/lib/imagekit/agent/bundle.tar.gz" in small and "- [/usr/local/sbin/imagekit-configure-agent]" \
        in small
    assert "path: /var/lib/imagekit/agent/bundle.tar.gz" not in big and "encoding: b64" not in big
    assert "- [/usr/local/sbin/imagekit-configure-agent]" not in big and "configured it over SSH (its code" in big


def test_bytes_at_hand_are_sent_as_any_bundle():
    """A roll's code, read from the old host: the same chunks and digest as a bundle loaded from disk."""
    data = os.urandom(3 * agentbundle.CHUNK + 5)
    found = agentbundle.in_memory(data, "the code of roll-1")
    assert b"".join(found.chunks()) == data and found.sha256 == hashlib.sha256(data).hexdigest()
