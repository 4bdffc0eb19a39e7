"""The systemd notify protocol: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

Our own 30 lines instead of the sdnotify package: sdnotify 0.3.2 (2017) encodes text as
Latin-1 (a Cyrillic STATUS is silently dropped), keeps one socket connected for good (lost
notifications after the socket is re-created) and knows nothing of the watchdog. The
protocol is one UTF-8 datagram of newline-separated fields per notification.
"""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str) -> bool:
    """Send `fields` to systemd; False when not run by systemd (or the socket is gone)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode("utf-8"), address)
    except OSError:
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def reloading() -> bool:
    # MONOTONIC_USEC is required by Type=notify-reload (systemd 253+) and ignored before.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None without a watchdog."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2
