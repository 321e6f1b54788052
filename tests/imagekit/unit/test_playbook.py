"""The playbook engine against this machine (bash in a temporary directory), and the real
`agent` playbook rendered for every OS and package source."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import textwrap
from itertools import product
from types import SimpleNamespace

import pytest
import yaml
from invoke.exceptions import CommandTimedOut

from imagekit.host import playbook
from imagekit.host.playbook import PlaybookError

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def local_runner(cmd: str, timeout: float) -> tuple[int, str]:
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def root(tmp_path):
    """A playbook tree of its own: two OSes, one package source that reads the OS data."""
    book = tmp_path / "books"
    (book / "os").mkdir(parents=True)
    (book / "sources").mkdir()
    (book / "os" / "testos.yml").write_text("greeting: hello\n")
    (book / "os" / "otheros.yml").write_text("greeting: hi\n")
    (book / "sources" / "here.yml").write_text("word: {{ greeting }}-from-here\n")
    (tmp_path / "host").mkdir()
    return book


@pytest.fixture
def host(tmp_path):
    return tmp_path / "host"


def write(root, text: str, name: str = "test") -> None:
    (root / f"{name}.yml").write_text(textwrap.dedent(text))


def load(root, host, name: str = "test", **extra):
    variables = {"os": "testos", "package_source": "here", "work": str(host), "owner": OWNER, "group": GROUP}
    return playbook.load(name, {**variables, **extra}, root=root)


def changed(results) -> list[str]:
    return [r.name for r in results if r.changed]


def test_creates_guard_skips_when_the_path_exists(root, host):
    write(root, """
        steps:
          - name: make marker
            creates: "{{ work }}/marker"
            run: |
              touch {{ work }}/marker
              echo ran >> {{ work }}/log
    """)
    book = load(root, host)
    assert changed(playbook.run(book, local_runner)) == ["make marker"]
    assert changed(playbook.run(book, local_runner)) == []
    assert (host / "log").read_text() == "ran\n"


def test_unless_guard_skips_when_the_command_succeeds(root, host):
    write(root, """
        steps:
          - name: state
            unless: grep -qx done {{ work }}/state
            run: echo done > {{ work }}/state
    """)
    book = load(root, host)
    assert changed(playbook.run(book, local_runner)) == ["state"]
    assert changed(playbook.run(book, local_runner)) == []
    (host / "state").write_text("drifted\n")
    assert changed(playbook.run(book, local_runner)) == ["state"]


FILE_BOOK = """
    steps:
      - name: config file
        file: "{{ work }}/etc/app.conf"
        mode: "0640"
        owner: "{{ owner }}"
        group: "{{ group }}"
        content: |
          word = {{ word }}
          quotes ' " and $HOME `x` \\n
          EOF
          ünïcode
        then: echo restarted >> {{ work }}/restarts
"""


def test_file_step_writes_then_reports_unchanged(root, host):
    write(root, FILE_BOOK)
    book = load(root, host)
    assert changed(playbook.run(book, local_runner)) == ["config file"]
    path = host / "etc" / "app.conf"
    assert path.read_text() == "word = hello-from-here\nquotes ' \" and $HOME `x` \\n\nEOF\nünïcode\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert changed(playbook.run(book, local_runner)) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.conf"]  # no temporary file left


def test_file_step_detects_a_mode_change(root, host):
    write(root, FILE_BOOK)
    book = load(root, host)
    playbook.run(book, local_runner)
    path = host / "etc" / "app.conf"
    path.chmod(0o666)
    assert changed(playbook.run(book, local_runner)) == ["config file"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_then_runs_only_when_the_step_changed(root, host):
    write(root, FILE_BOOK)
    book = load(root, host)
    playbook.run(book, local_runner)
    playbook.run(book, local_runner)
    assert (host / "restarts").read_text() == "restarted\n"
    (host / "etc" / "app.conf").write_text("edited by hand\n")
    playbook.run(book, local_runner)
    assert (host / "restarts").read_text() == "restarted\nrestarted\n"


def test_second_run_of_a_playbook_changes_nothing(root, host):
    write(root, FILE_BOOK.rstrip() + """
      - name: environment reaches commands
        creates: "{{ work }}/greeting"
        run: echo "$GREETING" > {{ work }}/greeting
    environment:
      GREETING: hi there
    """)
    book = load(root, host)
    first, second = [], []
    assert len(changed(playbook.run(book, local_runner, progress=first.append))) == 2
    assert changed(playbook.run(book, local_runner, progress=second.append)) == []
    assert (host / "greeting").read_text() == "hi there\n"
    assert first[0].startswith("  [changed]   config file (") and first[0].endswith(" s)")
    assert second[1].startswith("  [ok]        environment reaches commands (")


def test_failing_step_names_the_step_and_shows_the_tail(root, host):
    write(root, """
        steps:
          - name: noisy failure
            unless: "false"
            run: |
              for i in $(seq 1 100); do echo "line $i"; done
              echo "the real reason" >&2
              exit 3
          - name: never reached
            creates: /
            run: "true"
    """)
    lines = []
    with pytest.raises(PlaybookError) as exc:
        playbook.run(load(root, host), local_runner, progress=lines.append)
    message = str(exc.value)
    assert "noisy failure" in message and "exit 3" in message
    assert "line 100" in message and "the real reason" in message
    assert "line 50\n" not in message  # only the tail
    assert lines == [lines[0]] and lines[0].startswith("  [failed]    noisy failure")


def test_a_step_stops_at_its_first_failing_command(root, host):
    write(root, """
        steps:
          - name: two commands
            creates: "{{ work }}/second"
            run: |
              false
              touch {{ work }}/second
    """)
    with pytest.raises(PlaybookError, match="two commands"):
        playbook.run(load(root, host), local_runner)
    assert not (host / "second").exists()


def test_run_step_without_a_guard_is_rejected_at_load(root, host):
    write(root, """
        steps:
          - name: unguarded
            run: echo hi
    """)
    with pytest.raises(PlaybookError, match="unguarded.*needs a guard"):
        load(root, host)


@pytest.mark.parametrize("step, complaint", [
    ({"name": "typo", "run": "x", "unles": "y"}, "unknown keys: unles"),
    ({"name": "both", "run": "x", "file": "/f", "content": ""}, "exactly one of"),
    ({"name": "octal", "file": "/f", "content": "", "mode": 420}, "quoted octal"),
    ({"name": "empty", "file": "/f"}, "needs `content:`"),
    ({"run": "x", "creates": "/"}, "needs a `name:`"),
])
def test_malformed_steps_are_rejected_at_load(root, host, step, complaint):
    write(root, yaml.safe_dump({"steps": [step]}))
    with pytest.raises(PlaybookError, match=complaint):
        load(root, host)


def test_unknown_names_list_the_valid_ones(root, host):
    write(root, "steps: []\n")
    with pytest.raises(PlaybookError, match="unknown os 'plan9'; valid: otheros, testos"):
        load(root, host, os="plan9")
    with pytest.raises(PlaybookError, match="unknown package_source 'cdrom'; valid: here"):
        load(root, host, package_source="cdrom")
    with pytest.raises(PlaybookError, match="unknown profile 'nope'; valid: test"):
        load(root, host, name="nope")
    with pytest.raises(PlaybookError, match="unknown os None"):
        playbook.load("test", {"package_source": "here"}, root=root)


def test_undefined_variables_are_errors(root, host):
    write(root, "steps: []\nexpect: {id: '{{ build_id }}'}\n")
    with pytest.raises(PlaybookError, match="test.yml: 'build_id' is undefined"):
        load(root, host)
    assert load(root, host, build_id="b1").expect == {"id": "b1"}


def test_fabric_runner_adapts_a_connection():
    calls = []

    def run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        if cmd == "slow":
            raise CommandTimedOut(SimpleNamespace(stdout="partial", stderr=""), timeout=5)
        return SimpleNamespace(exited=2, stdout="out\n", stderr="err\n")

    runner = playbook.fabric_runner(SimpleNamespace(run=run))
    assert runner("cmd", 30) == (2, "out\nerr\n")
    assert calls[0][1] == {"hide": True, "warn": True, "timeout": 30, "in_stream": False}
    code, output = runner("slow", 5)
    assert code == 124 and "partial" in output and "timed out" in output


# The real agent playbook.

OSES = ["debian-12", "ubuntu-22.04", "ubuntu-24.04"]
SOURCES = ["local", "vendor"]
SAMPLE = {"build_id": "20250101000000-abcdef", "built_at": "2025-01-01T00:00:00+00:00",
          "source_revision": "0123456789ab", "standin_apt_source": "deb [trusted=yes] http://10.213.7.1:8931/apt ./",
          "node_major": 22, "grown": False}


def agent(os_name: str, source: str) -> playbook.Playbook:
    return playbook.load("agent", {**SAMPLE, "os": os_name, "package_source": source, "base_image": os_name})


@pytest.mark.parametrize("os_name, source", list(product(OSES, SOURCES)))
def test_agent_playbook_renders_for_every_os_and_source(os_name, source):
    book = agent(os_name, source)
    assert {"packages", "node_major", "compose_command", "services_enabled", "services_running", "ufw_rules",
            "user", "dirs"} <= set(book.expect)
    assert all(s.creates or s.unless for s in book.steps if s.run is not None)
    assert {"docker.socket", "fail2ban", "ufw", "openclaw-agent"} <= set(book.expect["services_enabled"])
    assert "openclaw-agent" not in book.expect["services_running"]  # enabled, not started
    assert book.expect["ufw_rules"] == ["22/tcp", "41641/udp"]
    assert book.expect["node_major"] == 22  # the setting's, whatever the OS ships
    assert book.environment["DEBIAN_FRONTEND"] == "noninteractive"


def test_agent_expectations_on_debian_12_local():
    expect = agent("debian-12", "local").expect
    assert expect["node_major"] == 22 and expect["compose_command"] == "docker-compose"
    assert {"docker.io", "docker-compose", "nodejs", "tailscale", "fail2ban", "ufw"} <= set(expect["packages"])
    assert expect["user"] == "openclaw"
    assert expect["dirs"] == ["/opt/openclaw/agent", "/opt/openclaw/config", "/opt/openclaw/logs"]


def test_agent_vendor_uses_the_vendors_repositories():
    book = agent("ubuntu-24.04", "vendor")
    assert book.expect["compose_command"] == "docker compose"
    assert "docker-compose-plugin" in book.expect["packages"]
    sources = "".join(s.content for s in book.steps if s.file and s.file.startswith("/etc/apt/sources.list.d/"))
    assert "https://download.docker.com/linux/ubuntu noble stable" in sources
    assert "https://deb.nodesource.com/node_22.x" in sources
    assert "https://pkgs.tailscale.com/stable/ubuntu noble main" in sources


def test_agent_local_needs_the_standin_repository():
    variables = {**SAMPLE, "os": "debian-12", "package_source": "local", "base_image": "debian-12"}
    del variables["standin_apt_source"]
    with pytest.raises(PlaybookError, match="standin_apt_source"):
        playbook.load("agent", variables)
    files = {s.file: s.content for s in agent("debian-12", "local").steps if s.file}
    assert files["/etc/apt/sources.list.d/tailscale-standin.list"] == SAMPLE["standin_apt_source"] + "\n"


def test_agent_fail2ban_jail_and_unit():
    book = agent("debian-12", "local")
    steps = {s.file: s for s in book.steps if s.file}
    jail = steps["/etc/fail2ban/jail.local"]
    assert "backend = systemd" in jail.content and "[recidive]" in jail.content and "restart fail2ban" in jail.then
    unit = steps["/etc/systemd/system/openclaw-agent.service"]
    for line in ("ExecStart=/usr/bin/node /opt/openclaw/agent/index.js", "User=openclaw",
                 "EnvironmentFile=/opt/openclaw/config/agent.env", "ConditionPathExists=/opt/openclaw/config/agent.env",
                 "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths="):
        assert line in unit.content, line
    assert unit.then == "systemctl daemon-reload"
    assert "systemctl restart ufw" in next(s.run for s in book.steps if s.name == "ufw service enabled and running")
