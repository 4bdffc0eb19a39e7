"""The daemon's own process limits, raised at its start.

Each gateway holds a connection, each mail client and API stream a socket: a hosting daemon
needs tens of thousands of descriptors, and a shell's soft limit is often 1,024. The soft
limit is raised to the hard one (the unit sets the hard one: LimitNOFILE=)."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """The soft limit of open descriptors raised to the hard one; the limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # (a container may forbid it: go on with what there is)
        log.warning("cannot raise the limit of open files from %d to %d: %s", soft, hard, exc)
        return soft
    log.info("open files: the limit raised from %d to %d", soft, hard)
    return hard
