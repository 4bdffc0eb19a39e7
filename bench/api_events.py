"""From SMTP's 250 to the server-sent event at every connected client, with many clients.

    .venv/bin/python bench/api_events.py [--clients 1000] [--messages 30]

`prostoy-mail serve` with SMTP and the API; `--clients` streams of GET /api/v1/organisations/
acme/events open at once (plain sockets, in this process). Then, one at a time, a message to
acme's mailbox over SMTP: from its 250 to the moment each client has read the event. Prints
the median and p99 over every (message, client), and the same for the first client to hear it
(the baseline: what one stream alone costs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api_owner import add_acme, owner_token
from bench.peers import free_port, wait_port
from tests.config_factory import config_text

CLI = str(Path(sys.executable).parent / "prostoy-mail")


async def client(port: int, token: str, heard: dict[str, list[float]], ready: asyncio.Event,
                 count: list[int], clients: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET /api/v1/organisations/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b": live"):
            count[0] += 1
            if count[0] == clients:
                ready.set()
        elif line.startswith(b"data: "):
            at = time.monotonic()  # (the client does as little as it can: its 1,000 reads are in the figure)
            start = line.index(b'"subject":') + 10
            start = line.index(b'"', start) + 1
            heard.setdefault(line[start:line.index(b'"', start)].decode(), []).append(at)


def send(port: int, subject: str) -> float:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("a@far.example", ["desk@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n".encode())
        return time.monotonic()  # (the 250 of DATA has come)


async def run(args: argparse.Namespace, http: int, smtp: int, token: str) -> None:
    heard: dict[str, list[float]] = {}
    ready = asyncio.Event()
    count = [0]
    tasks = [asyncio.create_task(client(http, token, heard, ready, count, args.clients)) for _ in range(args.clients)]
    await asyncio.wait_for(ready.wait(), 120)
    every: list[float] = []
    first: list[float] = []
    for number in range(args.messages):
        subject = f"message {number}"
        accepted = await asyncio.to_thread(send, smtp, subject)
        deadline = time.monotonic() + 30
        while len(heard.get(subject, ())) < args.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        times = heard.get(subject, [])
        if len(times) < args.clients:
            raise SystemExit(f"{subject}: {len(times)} of {args.clients} clients heard it within 30 s")
        every += [t - accepted for t in times]
        first.append(min(times) - accepted)
    for task in tasks:
        task.cancel()

    def p99(values: list[float]) -> float:
        return sorted(values)[min(len(values) - 1, int(0.99 * len(values)))]

    print(f"{args.clients} clients, {args.messages} messages: SMTP 250 -> the event at each client: "
          f"median {statistics.median(every) * 1000:.0f} ms, p99 {p99(every) * 1000:.0f} ms, "
          f"max {max(every) * 1000:.0f} ms")
    print(f"baseline, the first client to hear each: median {statistics.median(first) * 1000:.0f} ms, "
          f"p99 {p99(first) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=30)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients + 256)), hard))
    work = Path(tempfile.mkdtemp(prefix="pm-events-"))
    http, smtp = free_port(), free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(listen={"http": f"127.0.0.1:{http}", "smtp": f"127.0.0.1:{smtp}"},
                                  smtp={"workers": 0}))
    _setup(work / "store.db")
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    try:
        wait_port(http)
        token = owner_token(f"http://127.0.0.1:{http}/api/v1")
        print(f"loadavg {os.getloadavg()}", flush=True)
        uvloop.run(run(args, http, smtp, token))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    return 0


def _setup(store_path: Path) -> None:
    from prostoy_mail.store.sqlite import SqliteStore

    store = SqliteStore(store_path)
    try:
        acme = add_acme(store)
        store.replace_org_entries(acme, {"mailboxes": [{"login": "desk"}]})
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
