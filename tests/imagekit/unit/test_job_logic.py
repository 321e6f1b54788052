"""One-shot jobs' logic: the outputs' rules (against a host that lies in its SFTP answers), the work
directory's checks, the secrets file, the sandbox taken from the agent's unit, the run's exit code.
The jobs themselves run on real hosts in tests/imagekit/e2e/test_run_jobs.py."""

from __future__ import annotations

import io
import stat
from types import SimpleNamespace

import pytest

from imagekit import secretfile
from imagekit.errors import InputError
from imagekit.host import playbook
from imagekit.jobs import sandbox, transfer
from imagekit.jobs.run import exit_code
from imagekit.steps.install import playbook_variables


@pytest.mark.parametrize("rel, target, inside", [
    ("a", "b", True), ("sub/a", "../b", True), ("sub/deep/a", "../../b", True), ("a", "sub/./b", True),
    ("a", "/etc", False), ("a", "..", False), ("sub/a", "../..", False), ("a", "../a", False),
    ("sub/a", "x/../../..", False), ("a", "up/..", False),  # `..` after a name: the name may be a link up
    ("a", "", False), ("a", "b\0c", False),
])
def test_a_link_counts_as_inside_only_when_it_cannot_climb_out(rel, target, inside):
    assert transfer._inside(rel, target) is inside


class LyingHost:
    """An SFTP server on a hostile host: reports whatever the test says (names, links, sizes)."""

    def __init__(self, tree: dict):
        self.tree = tree  # path -> bytes (file), dict (directory) or ("link", target)

    def _node(self, path):
        node = self.tree
        for part in [p for p in path.split("/") if p][1:]:  # below "outputs"
            node = node[part]
        return node

    def lstat(self, path):
        return self._attr("", self._node(path))

    def listdir_iter(self, path):
        return [self._attr(name, node) for name, node in self._node(path).items()]

    def readlink(self, path):
        return self._node(path)[1]

    def open(self, path, mode):
        return io.BytesIO(self._node(path))

    @staticmethod
    def _attr(name, node):
        mode = stat.S_IFDIR | 0o755 if isinstance(node, dict) else \
            stat.S_IFLNK | 0o777 if isinstance(node, tuple) else stat.S_IFREG | 0o644
        return SimpleNamespace(filename=name, st_mode=mode)


def fetch(tmp_path, tree, limit=1000):
    return transfer.download(LyingHost(tree), "outputs", tmp_path / "out" / "job", limit)


def test_outputs_arrive_with_links_made_last(tmp_path):
    (tmp_path / "out").mkdir()
    got = fetch(tmp_path, {"a.txt": b"hello", "sub": {"b": b"x"}, "link": ("link", "sub/b")})
    assert got == {"files": 2, "bytes": 6, "links": 1, "skipped": []}
    assert (tmp_path / "out/job/link").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["job"]


@pytest.mark.parametrize("tree, message", [
    ({"ok": b"1", "../escape": b"x"}, "entry named '../escape'"),
    ({"ok": b"1", "a/b": b"x"}, "entry named 'a/b'"),
    ({"ok": b"1", "..": {}}, "entry named '..'"),
    ({"ok": b"1", "etc": ("link", "/etc")}, "outputs/etc links outside outputs/ (/etc)"),
    ({"sub": {"up": ("link", "../..")}}, "outputs/sub/up links outside outputs/"),
    ({"a": b"x" * 600, "b": b"y" * 600}, "outputs/ is over"),
])
def test_hostile_outputs_leave_nothing_behind(tmp_path, tree, message):
    (tmp_path / "out").mkdir()
    with pytest.raises(transfer.OutputRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        fetch(tmp_path, tree)
    assert list((tmp_path / "out").iterdir()) == []  # no staging directory, no half outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_outputs_link_on_the_host_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(transfer.OutputRefused, match="not a directory on the host"):
        transfer.download(LyingHost(("link", "/etc")), "outputs", tmp_path / "out" / "job", 1000)


def test_the_workdir_is_checked_before_anything_exists(tmp_path):
    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    (wd / "run.sh").write_text("echo hi\n")
    (wd / "run.sh").chmod(0o750)
    (wd / "sub" / "link").symlink_to("../run.sh")
    tree = transfer.scan_workdir(wd, 1000)
    assert ("run.sh", "file", 0o750, None) in tree.entries and ("sub/link", "link", 0, "../run.sh") in tree.entries
    (wd / "out").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="out links outside the directory"):
        transfer.scan_workdir(wd, 1000)
    (wd / "out").unlink()
    with pytest.raises(InputError, match="holds over 0 MiB"):
        transfer.scan_workdir(wd, 3)
    with pytest.raises(InputError, match="not a directory"):
        transfer.scan_workdir(tmp_path / "missing", 1000)


def test_a_secrets_file_parses_as_dotenv_and_errors_never_show_a_value(tmp_path):
    f = tmp_path / "s.env"
    f.write_text("# comment\n\nexport A=plain value # note\nB='single $quoted \"x\"'\nC=\"dq \\\"in\\\" \\n $x\"\nD=\n")
    values = secretfile.load(f).values
    assert values == {"A": "plain value", "B": 'single $quoted "x"', "C": 'dq "in" \n $x', "D": ""}
    assert secretfile.load(f).environment_file().decode() == (
        'A="plain value"\nB="single \\$quoted \\"x\\""\nC="dq \\"in\\" \n \\$x"\nD=""\n')
    assert "plain" not in repr(secretfile.load(f))
    f.write_text("GOOD=1\nnot a line with s3cret\n")
    with pytest.raises(InputError, match="line 2: expected KEY=VALUE") as err:
        secretfile.load(f)
    assert "s3cret" not in str(err.value)
    f.write_text("K='s3cret\n")
    with pytest.raises(InputError, match=r"line 1 \(K\): the single quote is not closed") as err:
        secretfile.load(f)
    assert "s3cret" not in str(err.value)
    assert not secretfile.load(None)


def test_the_jobs_sandbox_is_the_agent_units():
    book = playbook.load("agent", playbook_variables("agent", "debian-12", None, True, "t"))
    props = sandbox.properties(book, "/etc/systemd/system/openclaw-agent.service")
    keys = [k for k, _ in props]
    assert ("IPAddressDeny", "169.254.169.254") in props and ("ProtectProc", "invisible") in props
    assert keys.count("SystemCallFilter") == 2  # repeats kept, in order
    assert not {"User", "ExecStart", "WorkingDirectory", "ReadWritePaths", "EnvironmentFile"} & set(keys)
    line = sandbox.command("u", "openclaw", "/opt/openclaw/jobs/j", "/run/x.env", {"JOB_ID": "j"}, props, 30, 5,
                           ["sh", "-c", "echo 'a b'; exit 3"])
    assert "--property=NoNewPrivileges=yes" in line and "--property=EnvironmentFile=/run/x.env" in line
    assert line.endswith("-- /usr/bin/timeout --kill-after=5 30 sh -c 'echo '\"'\"'a b'\"'\"'; exit 3' </dev/null")


def test_the_runs_exit_code_is_the_first_failing_jobs():
    job = lambda code, error=None: {"exit_code": code, "error": error}  # noqa: E731
    assert exit_code([job(0), job(0)]) == 0
    assert exit_code([job(0), job(7), job(124)]) == 7
    assert exit_code([job(None, "SSH lost"), job(3)]) == 1
    assert exit_code([job(0, "outputs refused")]) == 1


def test_every_line_a_runner_sees_in_prefixed_output_is_the_jobs(capsysbinary):
    """The Actions runner ends a line at \\n, \\r or \\r\\n: each such line starts with the job's prefix, so a job's
    text never starts a workflow command (`::error::`); a \\r\\n split between two reads is one break."""
    from imagekit.jobs.job import Output

    out = Output("j1", prefixed=True, to_stderr=False)
    for chunk in [b"ok\r::error::pwned\n", b"win\r", b"\nbar 10%\rbar 100%\r\n::set-output name=x::y", b"\r"]:
        out.write(1, chunk)
    out.write(2, b"err\rmore")
    out.close()
    got = capsysbinary.readouterr()
    assert got.out.split(b"\n") == [b"[j1] ok", b"[j1] ::error::pwned", b"[j1] win", b"[j1] bar 10%",
                                    b"[j1] bar 100%", b"[j1] ::set-output name=x::y", b""]
    assert got.err == b"[j1] err\n[j1] more\n"
    alone = Output("j2", prefixed=False, to_stderr=False)  # one job alone: its bytes, as they are
    alone.write(1, b"a\rb")
    assert capsysbinary.readouterr().out == b"a\rb"
