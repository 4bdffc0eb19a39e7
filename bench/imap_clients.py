"""Many IMAP clients IDLE on the daemon, against Dovecot serving the same clients, one run.

    .venv/bin/python bench/imap_clients.py [--clients 1000] [--messages 10]

K clients (asyncio, one process of their own) connect at once over IMAPS, log in as one user,
SELECT INBOX and IDLE; then a message arrives each second, --messages times: through SMTP to
the user's personal mailbox (prostoy-mail) or APPENDed (Dovecot), and each client's EXISTS is
timed from that moment. Prints, for each server: seconds until all K idle, the server's RSS
(its processes together: Dovecot runs one `imap` process per session), RSS per session, and
the notification latency p50/p99 over every (message, client). Targets (issue #20, at 5,000):
RSS per session within 2x Dovecot's, p99 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import trustme

from bench.peers import free_port, wait_port
from tests.config_factory import config_text
from tests.dovecot import Dovecot
from tests.tls_files import write_server_pair

CLI = str(Path(sys.executable).parent / "prostoy-mail")
LOGIN, PASSWORD = "clerk", "clerk-password"


# --- the clients, as a process of their own --------------------------------------------------

async def clients(port: int, count: int, login: str, password: str, ready: Path, heard: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    log = heard.open("a", buffering=1)
    idling = [0]

    async def session(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        await reader.readline()
        writer.write(f'a LOGIN "{login}" "{password}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
        while not (line := await reader.readline()).startswith(b"+"):
            if not line or line.startswith((b"a NO", b"a BAD", b"b NO", b"* BYE")):
                raise SystemExit(f"session {number}: {line!r}")
        idling[0] += 1
        if idling[0] == count:
            ready.write_text(str(time.time()))
        while line := await reader.readline():
            if line.endswith(b"EXISTS\r\n"):
                log.write(f"{time.time()} {number}\n")

    await asyncio.gather(*(session(number) for number in range(count)))


# --- measuring ---------------------------------------------------------------------------------

def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [int(p) for p in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total


def measure(name: str, server_pid: int, port: int, count: int, messages: int, deliver: object,
            work: Path) -> dict[str, object]:
    ready, heard = work / f"{name}.ready", work / f"{name}.heard"
    began = time.time()
    process = subprocess.Popen([sys.executable, __file__, "--be-clients", str(port), str(count), LOGIN, PASSWORD,
                                str(ready), str(heard)])
    while not ready.exists():
        if process.poll() is not None:
            raise SystemExit(f"{name}: the clients exited")
        time.sleep(0.05)
    all_idle = float(ready.read_text()) - began
    time.sleep(2)
    rss = tree_rss_mb(server_pid)
    sent = []
    for number in range(messages):
        sent.append(time.time())
        deliver(f"message {number}")  # type: ignore[operator]
        time.sleep(1.0)
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    latencies = []
    for line in heard.read_text().splitlines():
        at = float(line.split()[0])
        origin = max((s for s in sent if s <= at), default=None)  # (the message each EXISTS is of)
        if origin is not None:
            latencies.append(at - origin)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")
    return {"all_idle_s": round(all_idle, 2), "rss_mb": round(rss, 1), "rss_per_session_kb": round(rss * 1024 / count),
            "heard": f"{len(ordered)} of {count * messages}",
            "p50_ms": round(statistics.median(ordered) * 1000) if ordered else None, "p99_ms": round(p99 * 1000)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--be-clients":
        _, _, port, count, login, password, ready, heard = sys.argv
        asyncio.run(clients(int(port), int(count), login, password, Path(ready), Path(heard)))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--without-dovecot", action="store_true",
                        help="prostoy-mail alone (Dovecot's process a session: 5.4 MB each, 27 GB at 5,000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-imapc-"))
    results: dict[str, dict[str, object]] = {}

    # (a) Dovecot, the anchor: one `imap` process per session, as it is deployed. Its users are
    # one Linux user here: past the kernel's fs.inotify.max_user_instances (128) its sessions
    # look for new mail every mailbox_idle_check_interval (set to 1 s) instead of being told.
    email = f"{LOGIN}@example.org"
    dovecot = None if args.without_dovecot else Dovecot({LOGIN: PASSWORD, email: PASSWORD}, extra_config=f"""
default_process_limit = {args.clients + 200}
default_client_limit = {4 * args.clients + 1000}
default_vsz_limit = 0
mailbox_idle_check_interval = 1 secs
service imap-login {{
  service_count = 0
  client_limit = {args.clients + 200}
}}
service anvil {{
  client_limit = {4 * args.clients + 1000}
}}
protocol imap {{
  mail_max_userip_connections = {args.clients + 10}
}}
""")
    try:
        if dovecot is None:
            raise _Skipped
        dovecot.start()
        assert dovecot.process is not None

        def append(subject: str) -> None:
            imap = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
            imap.login(LOGIN, PASSWORD)
            imap.append("INBOX", None, None, f"Subject: {subject}\r\n\r\nx\r\n".encode())
            imap.logout()

        results["dovecot"] = measure("dovecot", dovecot.process.pid, dovecot.ports["imaps"], args.clients,
                                     args.messages, append, work)
        print("dovecot", results["dovecot"], flush=True)
    except _Skipped:
        pass
    finally:
        if dovecot is not None:
            dovecot.stop()

    # (b) prostoy-mail
    from prostoy_mail.auth.password_hashes import hash_password
    from prostoy_mail.store.sqlite import SqliteStore

    smtp, imaps = free_port(), free_port()
    write_server_pair(trustme.CA(), work, "localhost", "127.0.0.1", common_name="localhost")
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(listen={"smtp": f"127.0.0.1:{smtp}", "imaps": f"127.0.0.1:{imaps}"},
                                  store=str(work / "store.db"), smtp={"workers": 0},
                                  tls={"cert": str(work / "cert.pem"), "key": str(work / "key.pem")},
                                  imap={"max_connections_per_ip": args.clients + 10},
                                  mailboxes=[{"login": "desk", "owner": LOGIN}]))
    store = SqliteStore(work / "store.db")
    store.add_user(LOGIN, "Clerk", hash_password(PASSWORD), False)
    store.close()
    daemon = subprocess.Popen([CLI, "--config", str(config), "serve", "--log-level", "warning"])
    try:
        wait_port(imaps, 60)

        def send(subject: str) -> None:
            with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
                client.sendmail("a@far.example", ["desk@example.test"], f"Subject: {subject}\r\n\r\nx\r\n".encode())

        results["prostoy"] = measure("prostoy", daemon.pid, imaps, args.clients, args.messages, send, work)
        print("prostoy", results["prostoy"], flush=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    if "dovecot" in results:
        ours, anchor = results["prostoy"], results["dovecot"]
        print(f"{args.clients} clients: RSS per session against Dovecot's: "
              f"{float(ours['rss_per_session_kb']) / float(anchor['rss_per_session_kb']):.2f}x")  # type: ignore[arg-type]
    return 0


class _Skipped(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
