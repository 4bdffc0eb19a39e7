"""A settings change made live: from a command's commit to the running daemon applying it.

    .venv/bin/python bench/live_change.py [--changes 30] [--orgs 100 1000] [--file-org]

For each count of `--orgs`: a `prostoy-mail serve` process on a SQLite store holding that
many organisations (each with two users, a project, three tasks, a mailbox and three rules).
Each round adds a rule to one organisation in the store with `--org org7 rule add` (the
command records the change in the store's change log, which the daemon polls; only that
organisation is built again), then sends one message over SMTP to that organisation's
mailbox that only the new rule matches, and checks it lands in the rule's task. With
`--file-org` the rule is the file's organisation's instead (the file is read again: a whole
rebuild). Printed per path, median and p99 over the rounds:
  - change log: from the change's commit (its row's time) to the daemon's recorded state;
  - the command as a user waits for it (process start included);
  - the same-run baseline: SIGHUP sent by this script to the state recorded (a whole rebuild).
The ratio of the change-log medians between the counts shows whether applying one
organisation's change grows with the number of organisations.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.organisations import add_organisations
from bench.peers import free_port, wait_port
from tests.config_factory import config_text

CLI = str(Path(sys.executable).parent / "prostoy-mail")


def cli(config: Path, *args: str) -> str:
    done = subprocess.run([CLI, "--config", str(config), *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"prostoy-mail {' '.join(args)}: {done.stderr}")
    return done.stdout


def state(store: Path) -> dict[str, float]:
    db = sqlite3.connect(store, timeout=10)
    try:
        row = db.execute("SELECT value FROM settings WHERE name = 'daemon.configuration'").fetchone()
        return dict(json.loads(row[0])) if row else {}
    finally:
        db.close()


def change_time(store: Path, change_id: int) -> float:
    db = sqlite3.connect(store, timeout=10)
    try:
        return float(db.execute("SELECT at FROM changes WHERE id = ?", (change_id,)).fetchone()[0])
    finally:
        db.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(orgs: int, changes: int, file_org: bool) -> float:
    """One store of `orgs` organisations; the change log's median (seconds)."""
    work = Path(tempfile.mkdtemp(prefix="pm-live-"))
    port = free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(listen={"smtp": f"127.0.0.1:{port}"}, mailboxes=["sales"], smtp={"workers": 0}))
    config.chmod(0o600)
    store = work / "store.db"
    cli(config, "project", "add", "Sales")
    cli(config, "task", "add", "Sales", "Invoices")
    started = time.monotonic()
    add_organisations(store, orgs)
    target = [] if file_org else ["--org", "org7"]
    mailbox = "sales@example.test" if file_org else "o7-box0@example.test"
    print(f"\n{orgs} organisations added in {time.monotonic() - started:.1f} s; loadavg {os.getloadavg()}; "
          f"{changes} rule changes of {'the file' if file_org else 'organisation org7 (in the store)'}", flush=True)
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    try:
        wait_port(port)
        via_log: list[float] = []
        via_command: list[float] = []
        via_sighup: list[float] = []
        for number in range(changes):
            token = f"token{number}x"
            began = time.monotonic()
            cli(config, *target, "rule", "add", f"r{number}", "--subject", token, "--task", "Sales/Invoices")
            via_command.append(time.monotonic() - began)
            now = state(store)
            via_log.append(now["applied_at"] - change_time(store, int(now["change_id"])))
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail("a@client.example", [mailbox], f"Subject: {token}\r\n\r\nbody\r\n".encode())
            routed = json.loads(cli(config, *target, "task", "comments", "Sales/Invoices", "--json"))
            assert routed[-1]["routed_by"] == [f"r{number}"], routed[-1]
            reloads = now.get("reloads", 0)
            sent = time.time()
            daemon.send_signal(signal.SIGHUP)
            while (after := state(store)).get("reloads", 0) <= reloads:
                time.sleep(0.005)
            via_sighup.append(after["applied_at"] - sent)
        for name, values in (("change log: commit -> applied", via_log),
                             ("the command, as a user waits (process start included)", via_command),
                             ("baseline, SIGHUP -> applied (a whole rebuild)", via_sighup)):
            print(f"  {name}: median {statistics.median(values) * 1000:.0f} ms, "
                  f"p99 {percentile(values, 0.99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
        print(f"  every message was routed by the rule just added ({changes} of {changes})")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    return statistics.median(via_log)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--orgs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--file-org", action="store_true", help="change the file's organisation's rules instead")
    args = parser.parse_args()
    medians = {orgs: run(orgs, args.changes, args.file_org) for orgs in args.orgs}
    if len(medians) > 1:
        low, high = min(medians), max(medians)
        print(f"\nchange log median at {high} organisations / at {low}: {medians[high] / medians[low]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
