"""The store's sync process: it fdatasyncs the WAL whenever the daemon asks (see syncer.py).

    python -m prostoy_mail.store.sync_process WAL_PATH REQUEST_FD ANSWER_FD

Requests are batch numbers, in order; for all those waiting the WAL is synced once and the
highest number answered, with errno (0: synced). It imports nothing more than that needs: it
lives as long as the daemon.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import sys

REQUEST = struct.Struct("!Q")  # a batch number
ANSWER = struct.Struct("!QI")  # the highest batch number synced, and errno (0: synced)


def sync(wal: str) -> None:
    fd = os.open(wal, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    wal, requests, answers = argv[0], int(argv[1]), int(argv[2])
    # Signals are the daemon's (systemd signals every process of the service): this process
    # ends when the daemon closes the request pipe, or is gone.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    received = b""
    while data := os.read(requests, 65536):
        received += data
        whole = len(received) - len(received) % REQUEST.size
        if not whole:
            continue
        (number,) = REQUEST.unpack_from(received, whole - REQUEST.size)  # the highest: they come in order
        received = received[whole:]
        error = 0
        try:
            sync(wal)
        except OSError as exc:
            error = exc.errno or errno.EIO
        try:
            os.write(answers, ANSWER.pack(number, error))
        except BrokenPipeError:  # the daemon has gone
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
