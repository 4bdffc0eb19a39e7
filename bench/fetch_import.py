"""Fetching from a gateway: prostoy-mail against mbsync, same private Dovecot, same messages.

    .venv/bin/python bench/fetch_import.py [--small 5000] [--large 20] [--idle-trials 50]

1. N messages of 20 KB (and M of 5 MB) are put in a Dovecot mailbox; `mbsync` (isync)
   copies them into a Maildir; prostoy-mail (`serve`, a gateway with import_since) imports
   them into the task store, durably and routed. Prints msg/s, MB/s and three ratios to
   mbsync: from adding the gateway to a running daemon (SIGHUP; how a mailbox is connected
   in use, the headline figure), from starting the daemon process (Python's start and
   imports included), and from its first stored message (steady state).
2. IDLE latency: with the daemon idling, a message is APPENDed to Dovecot and the time until
   its comment is in the store is measured, per trial; prints median and p90. Dovecot itself
   tells IDLE clients about new mail ~500 ms after it arrives (its NOTIFY_DELAY_MSECS).
"""

from __future__ import annotations

import argparse
import imaplib
import os
import pwd
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.peers import free_port, wait_port
from tests.dovecot import Dovecot

CLI = str(Path(sys.executable).parent / "prostoy-mail")


def fill_maildir(dovecot: Dovecot, login: str, count: int, size: int, tag: str) -> int:
    """Messages written straight into the user's Maildir (Dovecot indexes them on first access)."""
    new = dovecot.base / "home" / login / "Maildir" / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    nobody = pwd.getpwnam("nobody")
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    body = line * (size // len(line))
    total = 0
    for i in range(count):
        raw = (f"From: sender{i}@client.ru\r\nTo: {login}\r\nSubject: {tag} {i}\r\n"
               f"Message-ID: <{tag}.{i}@bench>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n").encode() + body
        path = new / f"{time.time():.6f}.{tag}{i}.bench"
        path.write_bytes(raw)
        total += len(raw)
    for path in [new.parent, *new.parent.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return total


def mbsync_inbox(work: Path, name: str, *, host: str, port: int, user: str, password: str,
                 tls: str = "SSLType None\nAuthMechs LOGIN") -> tuple[float, Path]:
    """`mbsync` pulling INBOX into an empty local Maildir; (seconds, the Maildir)."""
    local = work / f"maildir-{name}"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    config = work / f"mbsyncrc-{name}"
    config.write_text(f"""IMAPAccount a
Host {host}
Port {port}
User {user}
Pass {password}
{tls}

IMAPStore remote
Account a

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel c
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")
    start = time.perf_counter()
    subprocess.run(["mbsync", "-c", str(config), "-q", "c"], check=True, timeout=1800)
    return time.perf_counter() - start, local


def run_mbsync(dovecot: Dovecot, login: str, work: Path) -> float:
    return mbsync_inbox(work, "mbsync", host="127.0.0.1", port=dovecot.ports["imap"], user=login,
                        password=dovecot.users[login])[0]


def prostoy_config(dovecot: Dovecot, login: str, work: Path, smtp_port: int) -> Path:
    config = work / "prostoy-mail.toml"
    config.write_text(f"""[daemon]
domain = "bench.test"
store = "store.db"

[listen]
smtp = "127.0.0.1:{smtp_port}"

[fetch]
idle_renew = 60

""" + dovecot.gateway_toml(login, server="dovecot.bench", options='import_since = "2000-01-01"'))
    return config


def run_prostoy_reload(dovecot: Dovecot, login: str, work: Path, expected: int) -> float:
    """Seconds from adding the gateway to a running daemon (SIGHUP) to the last message stored:
    how an administrator connects a mailbox; the daemon's own start is not part of it."""
    smtp_port = free_port()
    config = prostoy_config(dovecot, login, work, smtp_port)
    with_gateway = config.read_text()
    config.write_text(with_gateway.split("[[gateways]]")[0])
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    try:
        wait_port(smtp_port)
        store = work / "store.db"
        config.write_text(with_gateway)
        start = time.perf_counter()
        daemon.send_signal(signal.SIGHUP)
        while count_messages(store) < expected:
            if daemon.poll() is not None:
                raise RuntimeError("prostoy-mail exited")
            time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)


def count_messages(store: Path) -> int:
    if not store.exists():
        return 0
    db = sqlite3.connect(store, timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def run_prostoy(dovecot: Dovecot, login: str, work: Path, expected: int
                ) -> tuple[float, float, subprocess.Popen[bytes]]:
    """Seconds from starting the daemon, and from its first stored message, to the last one stored."""
    for old in work.glob("store.db*"):
        old.unlink()
    smtp_port = free_port()
    config = prostoy_config(dovecot, login, work, smtp_port)
    start = time.perf_counter()
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    store = work / "store.db"
    first = 0.0
    while (stored := count_messages(store)) < expected:
        if daemon.poll() is not None:
            raise RuntimeError("prostoy-mail exited")
        if stored and not first:
            first = time.perf_counter()
        time.sleep(0.02)
    end = time.perf_counter()
    return end - start, end - (first or start), daemon


def idle_latency(dovecot: Dovecot, login: str, work: Path, trials: int) -> list[float]:
    store = work / "store.db"
    imap = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
    imap.login(login, dovecot.users[login])
    latencies = []
    db = sqlite3.connect(store, timeout=10)
    time.sleep(2.0)  # the watcher is idling by now
    for i in range(trials):
        subject = f"idle-probe-{i}"
        raw = f"From: a@b.ru\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
        start = time.perf_counter()
        imap.append("INBOX", None, None, raw)
        while db.execute("SELECT 1 FROM messages WHERE subject = ?", (subject,)).fetchone() is None:
            time.sleep(0.002)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.3)
    db.close()
    imap.logout()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=5000, help="messages of 20 KB")
    parser.add_argument("--large", type=int, default=20, help="messages of 5 MB")
    parser.add_argument("--idle-trials", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="mbsync and prostoy-mail, alternately")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-fetch-bench-"))
    users = {"small@bench.test": "s", "large@bench.test": "l", "idle@bench.test": "i"}
    dovecot = Dovecot(users).start()
    print(f"loadavg {os.getloadavg()}")
    try:
        for login, count, size in (("small@bench.test", args.small, 20_000), ("large@bench.test", args.large,
                                                                               5_000_000)):
            if not count:
                continue
            total = fill_maildir(dovecot, login, count, size, login.split("@")[0])
            ratios = []
            for round_number in range(1, args.rounds + 1):
                mbsync = run_mbsync(dovecot, login, work)
                target = work / f"{login}-{round_number}"
                target.mkdir()
                seconds, steady, daemon = run_prostoy(dovecot, login, target, count)
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
                reload_dir = work / f"{login}-{round_number}-reload"
                reload_dir.mkdir()
                reloaded = run_prostoy_reload(dovecot, login, reload_dir, count)
                ratios.append((mbsync / reloaded, mbsync / seconds, mbsync / steady))
                print(f"round {round_number}: {count} x {size // 1000} KB ({total / 1e6:.0f} MB): mbsync "
                      f"{count / mbsync:.0f} msg/s {total / 1e6 / mbsync:.1f} MB/s; prostoy-mail (durably stored "
                      f"and routed) {count / reloaded:.0f} msg/s {total / 1e6 / reloaded:.1f} MB/s from adding the "
                      f"gateway, {count / seconds:.0f} msg/s from starting the daemon, {count / steady:.0f} msg/s "
                      f"from its first stored message; ratios {mbsync / reloaded:.2f} / {mbsync / seconds:.2f} / "
                      f"{mbsync / steady:.2f} x mbsync", flush=True)
            print(f"{count} x {size // 1000} KB: prostoy-mail / mbsync median "
                  f"{statistics.median(r[0] for r in ratios):.2f} from adding the gateway to a running daemon "
                  f"[{min(r[0] for r in ratios):.2f}..{max(r[0] for r in ratios):.2f}], "
                  f"{statistics.median(r[1] for r in ratios):.2f} from starting the daemon, "
                  f"{statistics.median(r[2] for r in ratios):.2f} from its first stored message", flush=True)
        if args.idle_trials:
            idle_dir = work / "idle"
            idle_dir.mkdir()
            config = prostoy_config(dovecot, "idle@bench.test", idle_dir, free_port())
            daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
            try:
                wait_port(int(config.read_text().split("smtp = \"127.0.0.1:")[1].split('"')[0]))
                latencies = idle_latency(dovecot, "idle@bench.test", idle_dir, args.idle_trials)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
            ms = sorted(x * 1000 for x in latencies)
            print(f"IDLE latency, APPEND -> comment in the store, {len(ms)} trials: median {statistics.median(ms):.0f} "
                  f"ms, p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, min {ms[0]:.0f}, max {ms[-1]:.0f} "
                  "(Dovecot notifies after ~500 ms)")
    finally:
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
