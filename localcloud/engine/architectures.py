"""Which architectures the local cloud offers: x86 always, arm where this host runs arm64 programs.

Arm needs qemu-user registered with binfmt_misc (``host/binfmt``) and its own system image (``host/archimage``,
several minutes under emulation). The image is built when it is first needed (the first server created or rebuilt
from the arm ``debian-12``, whose create action waits for it, or ``PUT /_admin/architectures/arm``), not at every
start: most runs of the local cloud never boot an arm server. Where emulation cannot work, neither the arm types
nor the arm image are listed, and ``reason`` says why (``cloud-status`` shows it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import catalog

log = logging.getLogger("localcloud")

# arm's states: offered with its image to build at first use, being built, built, or not offered at all.
OFFERED, BUILDING, READY, UNAVAILABLE = "offered", "building", "ready", "unavailable"


class Architectures:
    """``Architectures()`` offers the whole catalogue, its arm image ready (the API in process, in tests); the local
    cloud's process gives ``emulation_reason`` (None: emulation works), ``build_image``, which builds the arm
    image (once), and whether it is ``built`` already (by an earlier start)."""

    def __init__(self, emulation_reason: str | None = None, build_image: Callable[[], object] | None = None,
                 built: bool = True):
        self.build_image = build_image
        self.arm = UNAVAILABLE if emulation_reason else (READY if built else OFFERED)
        self.reason = emulation_reason
        if emulation_reason:
            log.warning("arm server types are not offered: %s", emulation_reason)
        self._lock = threading.Lock()  # one build; whoever needs the image meanwhile waits for it

    def offers(self, architecture: str) -> bool:
        return architecture == "x86" or self.arm != UNAVAILABLE

    def server_types(self) -> list[dict]:
        return [t for t in catalog.SERVER_TYPES if self.offers(t["architecture"])]

    def system_images(self) -> list[dict]:
        return [i for i in catalog.SYSTEM_IMAGES if self.offers(str(i["architecture"]))]

    def ensure_arm_image(self) -> None:
        """Build the arm image now if need be (the caller waits: minutes the first time)."""
        with self._lock:
            if self.arm == READY or self.build_image is None:
                return
            self.arm, self.reason = BUILDING, "its system image is being built (several minutes, once)"
            started = time.monotonic()
            try:
                self.build_image()
            except Exception as exc:
                self.arm, self.reason = OFFERED, f"its system image could not be built ({exc}); see api.log"
                raise
            self.arm, self.reason = READY, None
            log.info("arm system image ready after %.0f s", time.monotonic() - started)

    def prepare_arm(self) -> dict:
        """Start building the arm image in the background if it is not built (tests and operators ask ahead)."""
        if self.arm == OFFERED:
            self.arm, self.reason = BUILDING, "its system image is being built (several minutes, once)"

            def build() -> None:
                try:
                    self.ensure_arm_image()
                except Exception:  # the state says it, and the next create tries again
                    log.exception("the arm64 system image could not be built")

            threading.Thread(target=build, name="arm-image", daemon=True).start()
        return self.status()

    def status(self) -> dict:
        return {"x86": READY, "arm": self.arm, "arm_reason": self.reason}
