"""Failpoints for fault-injection tests: named places where a test can make a real process die or
fail as it would under SIGKILL or a full disk. Inert unless HYBRIDGAN_FAILPOINTS names them.

HYBRIDGAN_FAILPOINTS="name=action[@n],..." with action "kill" (SIGKILL this process) or "enospc"
(raise OSError ENOSPC), firing at the n-th time the point is reached (default 1).
"""

from __future__ import annotations

import errno
import os
import signal

_hits: dict[tuple[str, str], int] = {}  # by (spec, point): a new spec starts counting afresh


def failpoint(name: str) -> None:
    spec = os.environ.get("HYBRIDGAN_FAILPOINTS")
    if not spec:
        return
    for item in spec.split(","):
        point, _, rest = item.strip().partition("=")
        if point != name:
            continue
        action, _, nth = rest.partition("@")
        key = (spec, name)
        _hits[key] = _hits.get(key, 0) + 1
        if _hits[key] != int(nth or 1):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device (failpoint)")
