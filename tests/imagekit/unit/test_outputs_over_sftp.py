"""A job's outputs fetched over real SFTP (paramiko's own server, in this process, over a socket pair, serving a
real directory): a tree arrives whole, and a directory of far more entries than allowed is refused after the host
has read little more than the limit from its disk, not the whole directory."""

from __future__ import annotations

import io
import os
import socket
import threading

import paramiko
import pytest

from imagekit.host.keys import new_ed25519
from imagekit.jobs import transfer


class Streamed(list):
    """A directory's entries as paramiko's server hands them out (16 a reply), each read from the disk only then:
    ``read`` counts what the host has read."""

    def __init__(self, entries, read: list):
        super().__init__()
        self.entries, self.read = entries, read

    def __getitem__(self, index):
        if index == slice(None, 16):
            batch = []
            for entry in self.entries:
                batch.append(paramiko.SFTPAttributes.from_stat(entry.stat(follow_symlinks=False), entry.name))
                if len(batch) == 16:
                    break
            self.read[0] += len(batch)
            return batch
        assert index == slice(16, None), index
        return self


class Host(paramiko.SFTPServerInterface):
    """The job's host: serves ``root`` read-only, as sftp-server would."""

    def __init__(self, server, root: str, read: list):
        super().__init__(server)
        self.root, self.read = root, read

    def _local(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def list_folder(self, path):
        return Streamed(os.scandir(self._local(path)), self.read)

    def lstat(self, path):
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path)))
        except FileNotFoundError:
            return paramiko.SFTP_NO_SUCH_FILE

    stat = lstat

    def readlink(self, path):
        return os.readlink(self._local(path))

    def open(self, path, flags, attr):
        handle = paramiko.SFTPHandle(flags)
        handle.readfile = open(self._local(path), "rb")
        return handle


class Login(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED


@pytest.fixture
def host(tmp_path):
    """(an SFTP client to a host serving ``tmp_path / 'host'``, the count of entries it has read from disk)."""
    root = tmp_path / "host"
    root.mkdir()
    read = [0]
    ours, theirs = socket.socketpair()
    server = paramiko.Transport(theirs)
    server.add_server_key(paramiko.Ed25519Key.from_private_key(io.StringIO(new_ed25519().private_openssh)))
    server.set_subsystem_handler("sftp", paramiko.SFTPServer, Host, str(root), read)
    server.start_server(event=threading.Event(), server=Login())
    client = paramiko.Transport(ours)
    client.start_client()
    client.auth_none("root")
    sftp = paramiko.SFTPClient.from_transport(client)
    yield sftp, root, read
    sftp.close()
    client.close()
    server.close()


def test_a_tree_arrives_whole_over_sftp(host, tmp_path):
    sftp, root, _ = host
    outputs = root / "outputs"
    (outputs / "sub" / "deeper").mkdir(parents=True)
    for i in range(40):  # more than one reply per directory, with subdirectories between them
        (outputs / f"f{i:02}").write_text(str(i))
        (outputs / "sub" / f"g{i:02}").write_text("g" * i)
    (outputs / "sub" / "deeper" / "h").write_text("h")
    (outputs / "sub" / "link").symlink_to("deeper/h")
    (tmp_path / "out").mkdir()
    got = transfer.download(sftp, "/outputs", tmp_path / "out" / "job", 10_000)
    assert got == {"files": 81, "bytes": sum(len(str(i)) + i for i in range(40)) + 1, "links": 1, "skipped": []}
    fetched = tmp_path / "out" / "job"
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*")) == \
        sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("*"))
    assert (fetched / "sub" / "link").read_text() == "h" and (fetched / "f07").read_text() == "7"


def test_millions_of_entries_are_refused_without_being_read(host, tmp_path):
    """The limit stops the listing itself: the host reads the limit and paramiko's read-ahead (50 requests of 16
    entries), not the 30 000 entries there are (a whole listing first would read them all)."""
    sftp, root, read = host
    outputs = root / "outputs"
    outputs.mkdir()
    for i in range(30_000):
        os.close(os.open(outputs / str(i), os.O_CREAT | os.O_WRONLY, 0o644))
    (tmp_path / "out").mkdir()
    with pytest.raises(transfer.OutputRefused, match="over 10000 entries"):
        transfer.download(sftp, "/outputs", tmp_path / "out" / "job", 2**20)
    assert transfer.MAX_ENTRIES < read[0] <= transfer.MAX_ENTRIES + 1 + 50 * 16, read[0]
    assert list((tmp_path / "out").iterdir()) == []
