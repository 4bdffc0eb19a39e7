"""Many gateways in one daemon, against the floor of a minimal asyncio IDLE client, one run.

    .venv/bin/python bench/gateways_scale.py [--gateways 1000] [--idle-seconds 30] [--traffic-seconds 20]

A private Dovecot holds N users (its limits raised for N sessions; all its users are one Linux
user, so past the kernel's fs.inotify.max_user_instances it notices new mail by looking every
second: the same for both targets). Then, in turn:
  (a) floor   - a minimal asyncio client (this file, run as a process of its own) logging N
                sessions in over plain IMAP and IDLEing in each: the least a process can hold
                N IDLE sessions with;
  (b) prostoy - `prostoy-mail serve` with N gateways (plain IMAP) fetching into tasks.
For each: seconds until all N are idling, RSS, threads, open descriptors, CPU while idle over
--idle-seconds, then the latency from Dovecot's APPEND to the client hearing EXISTS (floor) or
to the comment in the store (prostoy) while 1 % of the mailboxes get a message each second,
p50/p99; and how long SIGTERM takes to stop it. Targets (issue #20, at 10,000): all within
60 s, idle CPU under 5 % of a core, RSS at most 1.5x the floor's, p50 within 50 ms and p99
within 250 ms of the floor's, stop under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.peers import free_port, wait_port
from tests.dovecot import Dovecot

CLI = str(Path(sys.executable).parent / "prostoy-mail")
TICKS = os.sysconf("SC_CLK_TCK")


def scale_config(sessions: int) -> str:
    return f"""
default_process_limit = {sessions + 200}
default_client_limit = {4 * sessions + 1000}
default_vsz_limit = 0
mailbox_idle_check_interval = 1 secs
service imap-login {{
  service_count = 0
  process_min_avail = 2
  client_limit = {sessions + 200}
}}
service imap {{
  process_limit = {sessions + 200}
}}
service anvil {{
  client_limit = {4 * sessions + 1000}
}}
"""


# --- the floor: a minimal asyncio IDLE client, as a process of its own -----------------------

async def floor_client(port: int, users: list[tuple[str, str]], ready: Path, heard: Path) -> None:
    log = heard.open("a", buffering=1)

    async def session(login: str, password: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(f'a LOGIN "{login}" "{password}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
        while not (line := await reader.readline()).startswith(b"+"):
            if not line or line.startswith((b"a NO", b"a BAD", b"b NO", b"* BYE")):
                raise SystemExit(f"{login}: {line!r}")
        idling.append(login)
        if len(idling) == len(users):
            ready.write_text(str(time.time()))
        while line := await reader.readline():
            if line.endswith(b"EXISTS\r\n"):
                log.write(f"{time.time()} {login}\n")

    idling: list[str] = []
    await asyncio.gather(*(session(login, password) for login, password in users))


# --- measuring a process --------------------------------------------------------------------

def process_figures(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    rss = int(status["VmRSS"].split()[0]) / 1024
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for child in children:  # (the daemon's sync process is part of it)
        child_status = dict(line.split(":", 1) for line in Path(f"/proc/{child}/status").read_text().splitlines())
        rss += int(child_status["VmRSS"].split()[0]) / 1024
    return {"rss_mb": rss, "threads": int(status["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def idle_cpu(pid: int, seconds: float) -> float:
    """Percent of one core used over `seconds`."""
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - began)


def traffic(dovecot: Dovecot, logins: list[str], seconds: float) -> dict[str, tuple[float, str]]:
    """1 % of the mailboxes get a message each second (spread over the second); when each was
    appended, and to whom, by subject."""
    per_second = max(1, len(logins) // 100)
    sent: dict[str, tuple[float, str]] = {}
    end = time.monotonic() + seconds
    number = 0
    while time.monotonic() < end:
        for login in random.sample(logins, per_second):
            subject = f"scale {number}"
            number += 1
            imap = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
            imap.login(login, dovecot.users[login])
            sent[subject] = (time.time(), login)
            imap.append("INBOX", None, None, f"Subject: {subject}\r\nTo: {login}\r\n\r\nx\r\n".encode())
            imap.logout()
            time.sleep(max(0.0, 1.0 / per_second - 0.01))
    return sent


def percentiles(values: list[float]) -> str:
    if not values:
        return "none heard"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms ({len(ordered)} messages)"


def stop(process: subprocess.Popen[bytes]) -> float:
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(120)
    return time.monotonic() - began


def run_floor(dovecot: Dovecot, logins: list[str], work: Path, args: argparse.Namespace) -> dict[str, object]:
    ready, heard = work / "floor.ready", work / "floor.heard"
    began = time.time()
    process = subprocess.Popen([sys.executable, __file__, "--floor", str(dovecot.ports["imap"]), str(ready),
                                str(heard)], stdin=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write("".join(f"{login} {dovecot.users[login]}\n" for login in logins).encode())
    process.stdin.close()
    while not ready.exists():
        if process.poll() is not None:
            raise SystemExit("the floor client exited")
        time.sleep(0.05)
    all_idle = float(ready.read_text()) - began
    figures = process_figures(process.pid)
    cpu = idle_cpu(process.pid, args.idle_seconds)
    sent = traffic(dovecot, logins, args.traffic_seconds)
    time.sleep(3)
    arrived = {}
    for line in heard.read_text().splitlines():
        at, login = line.split()
        arrived.setdefault(login, []).append(float(at))
    latencies = []  # (EXISTS names no subject: each login's appends are matched in order)
    by_login: dict[str, list[float]] = {}
    for at, login in sorted(sent.values()):
        by_login.setdefault(login, []).append(at)
    for login, times in by_login.items():
        for sent_at, heard_at in zip(times, arrived.get(login, []), strict=False):
            latencies.append(heard_at - sent_at)
    return {"all_idle": all_idle, **figures, "idle_cpu": cpu, "latency": percentiles(latencies),
            "stop": stop(process)}


def run_prostoy(dovecot: Dovecot, logins: list[str], work: Path, args: argparse.Namespace) -> dict[str, object]:
    smtp = free_port()
    config = work / "prostoy-mail.toml"
    gateways = "".join(f'[[gateways]]\nemail = "{login}"\nserver = "dovecot.test"\n'
                       f'password = "{dovecot.users[login]}"\n' for login in logins)
    config.write_text(f"""[daemon]
domain = "example.test"
store = "{work / 'store.db'}"
[listen]
smtp = "127.0.0.1:{smtp}"
[smtp]
workers = 0
[[servers]]
name = "dovecot.test"
imap = "127.0.0.1:{dovecot.ports['imap']}"
smtp = "127.0.0.1:9"
ssl = false
fetch_security = "none"
{gateways}""")
    config.chmod(0o600)  # (it holds the gateways' passwords)
    began = time.time()
    process = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    wait_port(smtp, 120)
    store = sqlite3.connect(work / "store.db", timeout=30)
    deadline = time.monotonic() + 600
    while True:
        idle = store.execute("SELECT count(*) FROM gateway_state WHERE state = 'idle'").fetchone()[0]
        if idle >= len(logins):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {idle} of {len(logins)} gateways idle after 600 s")
        time.sleep(0.1)
    all_idle = time.time() - began
    figures = process_figures(process.pid)
    cpu = idle_cpu(process.pid, args.idle_seconds)
    sent: dict[str, tuple[float, str]] = {}
    sender = threading.Thread(target=lambda: sent.update(traffic(dovecot, logins, args.traffic_seconds)))
    sender.start()  # (the store is watched meanwhile: each comment's arrival is seen within 20 ms)
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + args.traffic_seconds + 30
    while (sender.is_alive() or len(arrived) < len(sent)) and time.monotonic() < deadline:
        for (subject,) in store.execute("SELECT subject FROM messages WHERE subject LIKE 'scale %'"):
            arrived.setdefault(subject, time.time())
        time.sleep(0.02)
    missing = [(s, login) for s, (_, login) in sent.items() if s not in arrived]
    for subject, login in missing:  # (what the gateway says of itself, for the reader to see why)
        state = store.execute("SELECT state, failed_step, last_error, failures FROM gateway_state WHERE gateway = ?",
                              (login,)).fetchone()
        print(f"not stored within 30 s: {subject} to {login}; its gateway: {state}", flush=True)
    store.close()
    latencies = [arrived[s] - at for s, (at, _) in sent.items() if s in arrived]
    return {"all_idle": all_idle, **figures, "idle_cpu": cpu, "latency": percentiles(latencies),
            "lost": len(sent) - len(arrived), "stop": stop(process)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        users = [tuple(line.split()) for line in sys.stdin.read().splitlines()]
        asyncio.run(floor_client(int(sys.argv[2]), users, Path(sys.argv[3]), Path(sys.argv[4])))  # type: ignore[arg-type]
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--traffic-seconds", type=float, default=20)
    args = parser.parse_args()
    logins = [f"box{i}@example.org" for i in range(args.gateways)]
    dovecot = Dovecot({login: f"secret{i}" for i, login in enumerate(logins)},
                      extra_config=scale_config(args.gateways)).start()
    work = Path(tempfile.mkdtemp(prefix="pm-scale-"))
    try:
        print(f"loadavg {os.getloadavg()}; {args.gateways} gateways; inotify instances "
              f"{Path('/proc/sys/fs/inotify/max_user_instances').read_text().strip()}", flush=True)
        results = {}
        for name, run in (("floor", run_floor), ("prostoy", run_prostoy)):
            results[name] = run(dovecot, logins, work, args)
            print(name, results[name], flush=True)
        floor, ours = results["floor"], results["prostoy"]
        print(f"RSS against the floor: {float(ours['rss_mb']) / float(floor['rss_mb']):.2f}x")  # type: ignore[arg-type]
    finally:
        dovecot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
