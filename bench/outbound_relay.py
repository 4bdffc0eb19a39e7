"""Submission -> relay: prostoy-mail's outbound path against a direct aiosmtplib client, in one run.

    .venv/bin/python bench/outbound_relay.py [--rounds 3] [--messages 500] [--sizes 2000,100000]

The peer is a bare aiosmtpd server in its own process (its handler answers 250). Per round
and size:
  (a) direct  - one aiosmtplib client sends the messages to the peer over one connection;
  (b) prostoy - mail clients (aiosmtplib, STARTTLS + AUTH, --clients connections) submit the same
                messages to `prostoy-mail serve`, which commits each to its spool before the
                250 and relays it to the peer over its reused connection. Timed from the first
                submission (the clients are connected and logged in before) until the spool
                records the last one as sent.
Prints msg/s of both, the ratio b/a, and the peer connections prostoy-mail opened. Also
checks that every submitted message was recorded as sent exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
import trustme

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import NullAiosmtpd, free_port, wait_port

from tests.tls_files import write_server_pair

DOMAIN = "bench.test"


def message(i: int, size: int) -> bytes:
    head = f"From: sales@{DOMAIN}\r\nTo: someone@far.example\r\nSubject: bench {i}\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


class ProstoyMail:
    def __init__(self, base: Path, relay_port: int) -> None:
        self.base = base
        self.relay_port = relay_port
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cli = str(Path(sys.executable).parent / "prostoy-mail")
        self.ca = trustme.CA()

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        write_server_pair(self.ca, self.base, "127.0.0.1")
        config = self.base / "prostoy-mail.toml"
        config.write_text(f"""
[daemon]
domain = "{DOMAIN}"
store = "store.db"
hostname = "mx.{DOMAIN}"
[listen]
submission = "127.0.0.1:{self.port}"
[tls]
cert = "cert.pem"
key = "key.pem"
[smtp]
max_message_size = 10485760
[outbound]
poll_interval = 1
[relay]
host = "127.0.0.1"
port = {self.relay_port}
security = "none"
[[mailboxes]]
login = "sales"
""")
        password = self.base / "pw"
        password.write_text("bench-pw\n")
        subprocess.run([self.cli, "--config", str(config), "user", "add", "bench", "--password-file", str(password)],
                       check=True, capture_output=True)
        self.proc = subprocess.Popen([self.cli, "--config", str(config), "serve", "--log-level", "warning"])
        wait_port(self.port)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def sent(self) -> tuple[int, int]:
        db = sqlite3.connect(self.base / "store.db")
        try:
            sent = db.execute("SELECT count(*) FROM outbound WHERE state = 'sent'").fetchone()[0]
            total = db.execute("SELECT count(*) FROM outbound").fetchone()[0]
            return int(sent), int(total)
        finally:
            db.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


async def direct(port: int, messages: list[bytes]) -> float:
    started = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60) as smtp:
        for raw in messages:
            await smtp.sendmail(f"sales@{DOMAIN}", ["someone@far.example"], raw)
    return time.perf_counter() - started


async def through_prostoy(prostoy: ProstoyMail, messages: list[bytes], already_sent: int,
                         clients: int) -> tuple[float, float]:
    context = prostoy.client_context()
    # Clients connect and log in before the clock starts: Argon2 costs ~0.1 s of CPU per login
    # by design, once per connection, and is not what this measures.
    smtps = [aiosmtplib.SMTP(hostname="127.0.0.1", port=prostoy.port, start_tls=True, tls_context=context,
                             username="bench", password="bench-pw", timeout=60) for _ in range(clients)]
    await asyncio.gather(*(smtp.connect() for smtp in smtps))
    started = time.perf_counter()

    async def client(smtp: aiosmtplib.SMTP, part: list[bytes]) -> None:
        for raw in part:
            await smtp.sendmail(f"sales@{DOMAIN}", ["someone@far.example"], raw)

    await asyncio.gather(*(client(smtp, messages[i::clients]) for i, smtp in enumerate(smtps)))
    submitted = time.perf_counter() - started
    while prostoy.sent()[0] < already_sent + len(messages):
        await asyncio.sleep(0.02)
    finished = time.perf_counter() - started
    for smtp in smtps:
        await smtp.quit()
    return submitted, finished


def peer_connections(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"dport = :{port}"], capture_output=True, text=True)
    return len([line for line in out.stdout.splitlines() if line.strip()])


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=500, help="2 KB messages per run (100 KB: a fifth)")
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--clients", type=int, default=8, help="parallel submission connections")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-bench-out-"))
    peer = NullAiosmtpd()
    peer.start()
    prostoy = ProstoyMail(work / "prostoy", peer.port)
    prostoy.start()
    ratios: dict[int, list[float]] = {}
    rates: dict[int, dict[str, list[float]]] = {}
    total = 0
    print(f"loadavg {os.getloadavg()}; {args.rounds} rounds; {args.clients} submitting clients; "
          "peer: bare aiosmtpd in its own process")
    try:
        for round_number in range(1, args.rounds + 1):
            for size in map(int, args.sizes.split(",")):
                count = args.messages if size < 10_000 else max(50, args.messages // 5)
                batch = [message(i, size) for i in range(count)]
                a = await direct(peer.port, batch)
                submitted, b = await through_prostoy(prostoy, batch, total, args.clients)
                total += count
                connections = peer_connections(peer.port)
                ratio = (count / b) / (count / a)
                ratios.setdefault(size, []).append(ratio)
                cell = rates.setdefault(size, {"direct": [], "prostoy": [], "submit": []})
                cell["direct"].append(count / a)
                cell["prostoy"].append(count / b)
                cell["submit"].append(count / submitted)
                print(f"round {round_number} size {size:>6}: direct {count / a:7.1f} msg/s  prostoy {count / b:7.1f}"
                      f" msg/s (submission alone {count / submitted:7.1f})  b/a {ratio:.2f}"
                      f"  peer connections open from prostoy: {connections}", flush=True)
    finally:
        prostoy.stop()
        peer.stop()
    print("\n| size | direct msg/s | prostoy msg/s (submit+relay) | submission msg/s | b/a (median [min..max]) |")
    print("| --- | --- | --- | --- | --- |")
    for size, cell in rates.items():
        r = ratios[size]
        print(f"| {size // 1000} KB | {statistics.median(cell['direct']):.0f} | "
              f"{statistics.median(cell['prostoy']):.0f} | {statistics.median(cell['submit']):.0f} | "
              f"{statistics.median(r):.2f} [{min(r):.2f}..{max(r):.2f}] |")
    sent, queued = prostoy.sent()
    print(f"\nsubmitted {total}; spool entries {queued}; recorded as sent {sent}: "
          f"{'OK' if sent == queued == total else 'MISMATCH'}")
    return 0 if sent == queued == total else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
