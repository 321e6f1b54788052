"""Listeners only where they belong (issue 23, item 6): the API (with the apt repository and the Tailscale
stand-in it serves) on loopback and the bridge's address, apt-cacher-ng on loopback and the local clouds'
bridges with its report page closed, never on every address.

The local clouds of a host share its one apt-cacher-ng; ``mirrorbind`` is tried on a private one (its own
configuration directory, port and pid file, started and stopped by the test), the shared one is only looked at.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from localcloud.host import mirrorbind
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS, HOST_ADDRESS6, MIRROR_PORT, layout

pytestmark = pytest.mark.e2e
PRIVATE_PORT = 3197
EVERY_ADDRESS = ("0.0.0.0", "*", "[::]")

INIT = """#!/bin/sh
# start/stop/restart a private apt-cacher-ng, as /etc/init.d/apt-cacher-ng does the host's
d={d}
start() {{ /usr/sbin/apt-cacher-ng -c $d CacheDir=$d/cache LogDir=$d/log SocketPath=$d/socket pidfile=$d/pid \
Port={port} foreground=0; n=0; while [ ! -s $d/pid ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; }}
stop() {{ [ -f $d/pid ] && p=$(cat $d/pid) && kill $p && while kill -0 $p 2>/dev/null; do sleep 0.1; done; \
rm -f $d/pid; }}
case "$1" in start) start ;; stop) stop ;; restart) stop; start ;; esac
"""


def listeners(port: int, process: str | None = None) -> list[tuple[str, str]]:
    """(address, process line) of every TCP listener on ``port`` (of ``process``, when given)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return [(line.split()[3].rsplit(":", 1)[0], line) for line in out.splitlines()
            if process is None or process in line]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def private_acng(tmp_path):
    """A private apt-cacher-ng with Debian's configuration, on every address of PRIVATE_PORT."""
    d = tmp_path / "acng"
    (d / "cache").mkdir(parents=True)
    (d / "log").mkdir()
    for name in ("acng.conf", "backends_debian"):
        shutil.copy(Path("/etc/apt-cacher-ng") / name, d / name)
    init = tmp_path / "init"
    init.write_text(INIT.format(d=d, port=PRIVATE_PORT))
    init.chmod(0o755)
    subprocess.run([str(init), "start"], check=True)
    yield d, str(init)
    subprocess.run([str(init), "stop"], check=False)


def wait_listening(port: int, address: str) -> list[str]:
    deadline = time.monotonic() + 10
    while address not in (found := [a for a, _ in listeners(port, "apt-cacher-ng")]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_mirrorbind_confines_a_real_apt_cacher_ng_and_keeps_the_other_clouds(private_acng):
    d, init = private_acng
    assert set(wait_listening(PRIVATE_PORT, "0.0.0.0")) & set(EVERY_ADDRESS)
    mirrorbind.confine([HOST_ADDRESS], PRIVATE_PORT, d, init)  # Debian's every-address: restarted with the list
    bridges = json.loads(subprocess.run(["ip", "-j", "addr", "show", "type", "bridge"], capture_output=True,
                                        text=True, check=True).stdout)
    others = {a["local"] for link in bridges for a in link.get("addr_info", [])
              if a.get("scope") != "link"} - {HOST_ADDRESS}  # the bridges' IPv4 and IPv6 (other clouds' too)
    shown = {f"[{a}]" if ":" in a else a for a in others}  # as ss shows them
    assert set(mirrorbind.listed((d / mirrorbind.CONF_NAME).read_text())) == {"127.0.0.1", "::1", HOST_ADDRESS,
                                                                              *others}

    found = wait_listening(PRIVATE_PORT, HOST_ADDRESS)
    assert not set(found) & set(EVERY_ADDRESS), found
    assert {"127.0.0.1", HOST_ADDRESS} <= set(found) and set(found) <= {"127.0.0.1", "[::1]", HOST_ADDRESS, *shown}
    assert status(f"http://{HOST_ADDRESS}:{PRIVATE_PORT}/acng-report.html") in (403, 404)
    assert status(f"http://127.0.0.1:{PRIVATE_PORT}/acng-report.html?doCount=Count+Data") in (403, 404)
    proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{PRIVATE_PORT}"}))
    with proxy.open("http://deb.debian.org/debian/dists/bookworm/Release", timeout=60) as response:
        assert response.status == 200  # Debian's mirror through it
    with pytest.raises(urllib.error.HTTPError) as refused:
        proxy.open("http://example.com/some.deb", timeout=60)  # not a host it maps: no open proxy
    assert refused.value.code == 403

    # A cloud whose bridge it does not serve yet: restarted once, with every other address kept.
    conf = d / mirrorbind.CONF_NAME
    conf.write_text(mirrorbind.render(["127.0.0.1", "::1", *sorted(others)]))
    subprocess.run([init, "restart"], check=True)
    wait_listening(PRIVATE_PORT, "127.0.0.1")
    assert HOST_ADDRESS not in [a for a, _ in listeners(PRIVATE_PORT, "apt-cacher-ng")]
    mirrorbind.confine([HOST_ADDRESS], PRIVATE_PORT, d, init)
    assert HOST_ADDRESS in [a for a, _ in listeners(PRIVATE_PORT, "apt-cacher-ng")]
    assert set(mirrorbind.listed(conf.read_text())) == {"127.0.0.1", "::1", HOST_ADDRESS, *others}

    subprocess.run([init, "stop"], check=True)  # not running: started
    mirrorbind.confine([HOST_ADDRESS], PRIVATE_PORT, d, init)
    assert HOST_ADDRESS in [a for a, _ in listeners(PRIVATE_PORT, "apt-cacher-ng")]


def test_nothing_of_the_local_cloud_listens_on_every_address(cloud_endpoint):
    api = int(layout().pid_file.read_text())
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    own = [line.split()[3] for line in out.splitlines() if f"pid={api}," in line]
    api_listeners = [a for a in own if a.endswith(f":{DEFAULT_API_PORT}")]
    assert sorted(api_listeners) == sorted([f"127.0.0.1:{DEFAULT_API_PORT}", f"{HOST_ADDRESS}:{DEFAULT_API_PORT}",
                                            f"[{HOST_ADDRESS6}]:{DEFAULT_API_PORT}"]), own
    assert all(a.startswith(f"{HOST_ADDRESS}:") for a in own if a not in api_listeners), own  # metadata listeners
    mirror = [address for address, _ in listeners(MIRROR_PORT, "apt-cacher-ng")]
    assert not set(mirror) & set(EVERY_ADDRESS), (
        f"apt-cacher-ng listens on every address ({mirror}), though the local cloud's start confines it")
    assert HOST_ADDRESS in mirror and f"[{HOST_ADDRESS6}]" in mirror
    assert status(f"http://{HOST_ADDRESS}:{MIRROR_PORT}/acng-report.html") in (403, 404)
