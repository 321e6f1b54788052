"""dnsmasq is sent SIGHUP for each new reservation: one sent before it handles the signal would end it (two
servers created within milliseconds did, and DHCP stayed down). ``catches_sighup`` tells a process that handles
it from one that does not, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

from localcloud.host.dhcp import catches_sighup

HANDLES = ("import signal, time; signal.signal(signal.SIGHUP, lambda *a: None); print('ready', flush=True); "
           "time.sleep(30)")


def test_a_process_that_handles_sighup_is_told_from_one_that_does_not():
    plain = subprocess.Popen(["sleep", "30"])
    handler = subprocess.Popen([sys.executable, "-c", HANDLES], stdout=subprocess.PIPE, text=True)
    try:
        assert handler.stdout is not None and handler.stdout.readline() == "ready\n"
        time.sleep(0.05)
        assert catches_sighup(handler.pid) and not catches_sighup(plain.pid)
    finally:
        plain.kill()
        handler.kill()
    plain.wait()
    assert not catches_sighup(plain.pid)  # gone: not a process that would survive a SIGHUP
