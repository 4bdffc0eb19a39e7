"""Logging to standard error, in journald's format when systemd runs us; the same in the
daemon and in its SMTP worker processes."""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar


class _JournalFormatter(logging.Formatter):
    """`<priority>logger: message` lines that journald files under the right priority."""

    PRIORITIES: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        priority = self.PRIORITIES.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


QUOTED_AT_MOST = 200  # characters of any one value a library logs (a client's 64 KB command, say)


def _cut_arguments(record: logging.LogRecord) -> bool:
    """aiosmtpd and Twisted quote what clients send in their log lines (a 64 KB command, say):
    every line of the message is cut to QUOTED_AT_MOST characters (a traceback stays whole)."""
    text = record.getMessage()
    if len(text) > QUOTED_AT_MOST:
        record.msg = "\n".join(_cut(line) for line in text.split("\n"))
        record.args = None
    return True


def _cut(line: str) -> str:
    return line if len(line) <= QUOTED_AT_MOST else f"{line[:QUOTED_AT_MOST]}... ({len(line)} characters)"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):  # journald adds its own timestamps
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    aiosmtpd_log = logging.getLogger("mail.log")
    aiosmtpd_log.setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    # ... and a deprecation warning of its own attribute at every successful AUTH
    aiosmtpd_log.addFilter(lambda record: "login_data is deprecated" not in record.getMessage())
    aiosmtpd_log.addFilter(_cut_arguments)
    twisted_log = logging.getLogger("twisted")
    twisted_log.setLevel(logging.WARNING)  # "Starting factory ..." and the like
    twisted_log.addFilter(_cut_arguments)
