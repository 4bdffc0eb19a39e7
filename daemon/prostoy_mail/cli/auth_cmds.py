"""`auth unblock ADDRESS`: forget a client address's failed logins in the running daemon."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..control_request import ANSWER, REQUEST, ControlAnswer, ControlRequest
from ..errors import ProstoyMailError
from ..instance_lock import store_holder
from .common import Context

if TYPE_CHECKING:
    from .common import Sub

WAIT = 15.0  # seconds for the daemon's answer


def register(sub: Sub) -> None:
    auth = sub.add_parser("auth", help="password logins (SMTP submission, IMAP)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = auth.add_parser("unblock", help="forget the failed logins counted for a client address")
    p.add_argument("address", help="the client's IP address, as the log names it")
    p.set_defaults(handler=unblock)


def unblock(ctx: Context) -> int:
    address = ctx.args.address
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise ProstoyMailError(f"{address}: not an IP address") from None
    store = ctx.store()
    pid = store_holder(Path(ctx.config().store_location()))
    if pid is None:
        ctx.say("no daemon is running on this store: nothing is blocked (failed logins are counted by the "
                "running daemon only)")
        return 0
    request = ControlRequest(secrets.token_hex(8), unblock=[address])
    store.set_setting(REQUEST, request.to_json())
    try:
        os.kill(pid, signal.SIGUSR1)
    except PermissionError:
        raise ProstoyMailError(f"the running daemon (PID {pid}) cannot be told by this user") from None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        answer = ControlAnswer.from_json(store.setting(ANSWER))
        if answer is not None and answer.id == request.id:
            cleared = answer.cleared.get(address, 0)
            records = f"{cleared} record" + ("" if cleared == 1 else "s")
            ctx.say(f"{address}: failed logins forgotten ({records})" if cleared
                    else f"{address}: no failed logins were counted for it")
            return 0
        time.sleep(0.05)
    raise ProstoyMailError(f"the running daemon (PID {pid}) did not answer within {WAIT:.0f} s: see its log")
