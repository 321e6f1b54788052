"""Power actions are signals to the guest's systemd; qemu-user renumbers real-time ones, so an arm guest's are sent
two higher (else a shutdown lands it in emergency mode, a pulled plug does nothing and a reset halts it)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from localcloud.engine import catalog
from localcloud.guests import machines
from localcloud.guests.limits import Limits

RECORDER = """\
import signal, sys
wanted = set(range(signal.SIGRTMIN, signal.SIGRTMAX + 1)) | {signal.SIGINT}
signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
print("ready", flush=True)
print(int(signal.sigwait(wanted)), flush=True)
"""


@pytest.mark.parametrize(("meaning", "sig"), [("shutdown", machines.SIG_POWEROFF), ("pull the plug",
                         machines.SIG_POWEROFF_NOW), ("reset", machines.SIG_REBOOT_NOW)])
def test_real_time_signals_are_two_higher_for_an_emulated_guest_only(meaning, sig):
    assert machines.init_signal(sig, emulated=False) == sig, meaning
    assert machines.init_signal(sig, emulated=True) == sig + 2, meaning
    assert sig + 2 <= signal.SIGRTMAX


def test_ctrl_alt_del_is_not_renumbered():
    assert machines.init_signal(signal.SIGINT, emulated=True) == signal.SIGINT


@pytest.mark.parametrize("emulated", [False, True])
def test_a_shutdown_signals_the_guests_init_with_its_architectures_number(tmp_path, monkeypatch, emulated):
    m = machines.Machine("ikbr9-5", tmp_path, "h", tmp_path / "log", lambda: None,
                         Limits.of_type(catalog.SERVER_TYPE_BY_NAME["cax11"]), emulated=emulated)
    init = subprocess.Popen([sys.executable, "-c", RECORDER], stdout=subprocess.PIPE, text=True)
    try:
        assert init.stdout.readline() == "ready\n"
        monkeypatch.setattr(m, "init_pid", lambda: init.pid)
        m.shutdown()
        assert int(init.stdout.readline()) == signal.SIGRTMIN + 4 + (2 if emulated else 0)
    finally:
        init.kill()
        init.wait()
