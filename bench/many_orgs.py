"""Many organisations on one daemon: start-up, memory and inbound SMTP throughput, against the
same daemon with only the file's organisation, in one run.

    .venv/bin/python bench/many_orgs.py [--orgs 1000] [--messages 3000] [--sessions 20]

Each organisation in the store has 5 domain mailboxes, 3 rules and 2 users; the file's has
the same. The baseline run has only the file's organisation. Load: smtp-source (Debian's
postfix package), one connection per message, 2 KB messages to one mailbox (of an
organisation in the middle, in the loaded run). Prints, per run: seconds from starting
`prostoy-mail serve` to its port answering, the daemon's RSS then, msg/s; and the ratios.
Also checks that every acknowledged message was stored.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.organisations import TITLES, add_organisations, rules
from bench.peers import free_port, smtp_source, wait_port
from tests.config_factory import config_text

CLI = str(Path(sys.executable).parent / "prostoy-mail")


def prepare(work: Path, orgs: int) -> tuple[Path, str]:
    from prostoy_mail.store.sqlite import SqliteStore

    port = free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(domain="bench.test", listen={"smtp": f"127.0.0.1:{port}"},
                                  smtp={"max_connections_per_ip": 1000},
                                  mailboxes=[f"box{i}" for i in range(5)], rules=rules("main")))
    store = SqliteStore(work / "store.db")
    try:
        with store.transaction():
            store.add_user("owner@main", "Owner", None, True)
            store.add_user("user@main", "User", None, False)
            store.add_project("Sales")
            for title in TITLES:
                store.add_task("Sales", title)
    finally:
        store.close()
    add_organisations(work / "store.db", orgs, mailboxes=5)
    target = f"o{orgs // 2}-box0@bench.test" if orgs else "box0@bench.test"
    return config, target


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(work: Path, orgs: int, messages: int, sessions: int) -> tuple[float, int, float, int]:
    work.mkdir()
    config, target = prepare(work, orgs)
    port = int(config.read_text().split('smtp = "127.0.0.1:')[1].split('"')[0])
    started = time.monotonic()
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"],
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=120)
        start_up, rss = time.monotonic() - started, rss_kib(daemon.pid)
        took = smtp_source(port, messages=messages, sessions=sessions, size=2000, to=target)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    db = sqlite3.connect(work / "store.db")
    stored = int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    db.close()
    return start_up, rss, messages / took, stored


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-orgs-"))
    print(f"loadavg {os.getloadavg()}; {args.messages} messages of 2 KB, {args.sessions} sessions", flush=True)
    results = {}
    for label, orgs in (("the file's organisation only", 0), (f"{args.orgs} organisations more", args.orgs)):
        start_up, rss, rate, stored = run(work / f"orgs-{orgs}", orgs, args.messages, args.sessions)
        results[orgs] = (start_up, rss, rate)
        print(f"{label}: ready in {start_up:.2f} s, RSS {rss / 1024:.0f} MiB, {rate:.0f} msg/s; "
              f"stored {stored} of {args.messages}", flush=True)
    base, loaded = results[0], results[args.orgs]
    print(f"ratios ({args.orgs} organisations / the file's only): start-up {loaded[0] / base[0]:.2f}, "
          f"RSS {loaded[1] / base[1]:.2f}, msg/s {loaded[2] / base[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
