"""The long form of the crash suite: many SIGKILLs under load, then counted.

    .venv/bin/python bench/crash_suite.py [--kills 20] [--only smtp,smtp-workers,fetch,outbound,webhooks]

For each kind (see tests/crash.py): the daemon is killed with SIGKILL at random moments
(at least --kills times) while under load, and restarted (smtp-workers: one of its child
processes is killed instead, an SMTP worker or the store's sync process, and the daemon starts
another); prints, per kind, the kills
survived, messages acknowledged, stored (for outbound: delivered to the peer), lost and
duplicated. The verdict line demands 0 lost everywhere and 0 duplicated for SMTP and
fetching; for the outbound spool a duplicate is allowed only inside the window between
the next server's 250 and our record of it (see README "Guarantees"), and is counted; for
webhooks an event POSTed again after a kill is at-least-once delivery (counted), while an
event of the store that never reached the receiver is lost and one it got that the store has
not is invented.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.crash import fetch_crash, outbound_crash, smtp_crash, webhook_crash


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--only", default="smtp,smtp-workers,fetch,outbound,webhooks")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-crash-"))
    print(f"loadavg {os.getloadavg()}; {args.kills} kills per kind; work in {work}", flush=True)
    reports = []
    for kind in args.only.split(","):
        started = time.monotonic()
        if kind == "smtp":
            report = smtp_crash(work / kind, args.kills)
        elif kind == "smtp-workers":
            report = smtp_crash(work / kind, args.kills, kill="workers")
        elif kind == "fetch":
            report = fetch_crash(work / kind, args.kills, messages=max(200, args.kills * 25))
        elif kind == "webhooks":
            report = webhook_crash(work / kind, args.kills)
        else:
            report = outbound_crash(work / kind, args.kills)
        print(f"{report.line()}  ({time.monotonic() - started:.0f} s)", flush=True)
        reports.append(report)
    lost = sum(r.lost for r in reports)
    duplicated = sum(r.duplicated for r in reports if r.what != "outbound")
    window = sum(r.duplicated for r in reports if r.what == "outbound")
    half = sum(r.half_stored for r in reports) + sum(r.extra.get("events invented", 0) for r in reports)
    print(f"\nverdict: {lost} lost, {duplicated} duplicated, {half} half-stored "
          f"(outbound: {window} sent twice inside the 250-to-record window)")
    return 0 if lost == duplicated == half == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
