"""The daemon's work for one organisation's settings change, without the poll around it.

    .venv/bin/python bench/org_change_build.py [--orgs 100 1000] [--mailboxes 5] [--changes 20]

For each count of organisations (each with two users, three tasks, `--mailboxes` mailboxes
and three rules) in a SQLite store: RunningConfig.build from nothing (what a start or SIGHUP
does: the same-run baseline), then `--changes` times a rule added to one organisation and
the build for that organisation alone (what the change log makes the daemon do). Printed:
each one's median; the ratio of the one-organisation medians between the counts shows
whether applying one organisation's change grows with the number of organisations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.organisations import add_organisations
from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import Config
from prostoy_mail.running_config import RunningConfig
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import config_text


def measure(orgs: int, mailboxes: int, changes: int) -> float:
    work = Path(tempfile.mkdtemp(prefix="pm-build-"))
    add_organisations(work / "store.db", orgs, mailboxes=mailboxes)
    store = SqliteStore(work / "store.db")
    try:
        config = parse_config(config_text(mailboxes=["sales"], store=str(work / "store.db")), work / "pm.toml")
        parsed: dict[str, Config] = {}
        started = time.perf_counter()
        running = RunningConfig.build(config, store, 1, parsed)
        whole = time.perf_counter() - started
        org = store.organisation("org7").id
        one: list[float] = []
        for number in range(changes):
            entries = store.org_entries(org)
            entries["rules"] = [*entries["rules"], {"name": f"extra{number}", "subject": f"x{number}",
                                                    "action": "comment", "task": "Sales/Invoices"}]
            store.replace_org_entries(org, entries)
            started = time.perf_counter()
            running = RunningConfig.build(config, store, 2 + number, parsed, running, {org})
            one.append(time.perf_counter() - started)
            assert f"extra{number}" in [r.name for r in running.intake.table.scopes["mailbox:o7-box0"].global_rules]
    finally:
        store.close()
    median = statistics.median(one)
    print(f"{orgs} organisations x {mailboxes} mailboxes: whole build {whole * 1000:.0f} ms (baseline); "
          f"one organisation's change: median {median * 1000:.1f} ms, max {max(one) * 1000:.1f} ms")
    return median


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--mailboxes", type=int, default=5)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    medians = {orgs: measure(orgs, args.mailboxes, args.changes) for orgs in args.orgs}
    if len(medians) > 1:
        low, high = min(medians), max(medians)
        print(f"one organisation's change at {high} / at {low} organisations: {medians[high] / medians[low]:.2f} "
              f"(organisations x{high / low:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
