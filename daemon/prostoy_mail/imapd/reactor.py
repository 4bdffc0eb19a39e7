"""Twisted on the daemon's own asyncio event loop (one loop for everything).

Twisted's asyncio reactor is installed on the running loop before anything imports
`twisted.internet.reactor`, and started without signal handlers (asyncio keeps SIGTERM and
SIGHUP); Twisted's log goes to stdlib logging. Once per process.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

_installed_on: asyncio.AbstractEventLoop | None = None


def install(loop: asyncio.AbstractEventLoop) -> Any:
    """The reactor, running on `loop`."""
    global _installed_on
    if _installed_on is None:
        if "twisted.internet.reactor" in sys.modules:
            raise RuntimeError("a Twisted reactor was imported before ours could be installed")
        from twisted.internet import asyncioreactor
        asyncioreactor.install(loop)
        from twisted.logger import STDLibLogObserver, globalLogBeginner
        globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
        _installed_on = loop
    elif _installed_on is not loop:
        raise RuntimeError("Twisted's reactor is bound to another event loop in this process")
    from twisted.internet import reactor
    if not reactor.running:
        reactor.startRunning(installSignalHandlers=False)
    return reactor
