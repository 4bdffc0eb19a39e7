"""Killing the daemon at random moments under load, and counting: nothing lost, nothing twice.

`prostoy-mail serve` runs as a child process and gets SIGKILL at random moments while
(a) SMTP clients send to it, (b) it fetches from a Dovecot gateway with delete-after-commit,
(c) its outbound spool delivers submitted mail to an SMTP peer. After each kill it is
started again. Every message carries a unique Message-ID; afterwards the store (and the
peer) are counted against what was acknowledged. Used by the quick tests in CI
(tests/e2e/test_crash.py) and by the long run (bench/crash_suite.py).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import random
import signal
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.config_factory import QUICK_FETCH, config_text
from tests.ports import free_port, wait_port
from tests.tls_files import write_server_pair

CLI = str(Path(sys.executable).parent / "prostoy-mail")


@dataclass
class Report:
    what: str
    kills: int = 0
    acknowledged: int = 0
    stored: int = 0  # distinct acknowledged messages found where they belong
    lost: int = 0
    duplicated: int = 0  # messages found more than once
    half_stored: int = 0  # stored without their comment, or with other bytes than were sent
    extra: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (f"{self.what}: kills survived {self.kills}, acknowledged {self.acknowledged}, stored {self.stored}, "
                f"lost {self.lost}, duplicated {self.duplicated}, half-stored {self.half_stored}{extra}")


class DaemonProcess:
    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.port = port  # the one to wait for after a start
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "daemon.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([CLI, "--config", str(self.config), "serve", "--log-level", "warning"],
                                         stdout=log, stderr=log)
        atexit.register(self._kill_if_running, self.proc)  # a failed run leaves no daemon behind
        wait_port(self.port)

    @staticmethod
    def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def workers(self) -> list[int]:
        """The daemon's child processes: its SMTP workers and the store's sync process."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except FileNotFoundError:
            return []

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0


def message(marker: str, size: int = 2000) -> bytes:
    head = (f"From: load@client.example\r\nTo: box@crash.test\r\nSubject: {marker}\r\n"
            f"Message-ID: <{marker}@crash>\r\n\r\n").encode()
    return head + (b"x" * 70 + b"\r\n") * max(1, size // 72)


def kill_loop(daemon: DaemonProcess, kills: int, stop: threading.Event, low: float = 0.3, high: float = 1.2) -> int:
    """SIGKILL and restart the daemon `kills` times at random moments; how many it survived."""
    survived = 0
    for _ in range(kills):
        time.sleep(random.uniform(low, high))
        daemon.kill()
        daemon.start()
        survived += 1
    stop.set()
    return survived


def kill_workers_loop(daemon: DaemonProcess, kills: int, stop: threading.Event, low: float = 0.3,
                      high: float = 1.2) -> int:
    """SIGKILL one of the daemon's child processes (an SMTP worker, or the store's sync process)
    `kills` times at random moments (the daemon starts another); how many were killed."""
    killed = 0
    while killed < kills:
        time.sleep(random.uniform(low, high))
        workers = daemon.workers()
        if workers:
            os.kill(random.choice(workers), signal.SIGKILL)
            killed += 1
    stop.set()
    return killed


def _store_counts(store: Path) -> tuple[Counter[str], dict[str, str], set[str]]:
    """Per Message-ID: how many times stored, the sha256 of the raw bytes as they can be read back
    (from the database, or from the message's file), and which have comments."""
    db = sqlite3.connect(store)
    try:
        counts: Counter[str] = Counter()
        hashes: dict[str, str] = {}
        for message_id, raw, raw_file in db.execute(
                "SELECT message_id, raw, raw_file FROM messages WHERE direction = 'in'"):
            if message_id:
                counts[message_id] += 1
                if raw_file:
                    path = Path(f"{store}.messages") / raw_file
                    raw = path.read_bytes() if path.exists() else b"(its file is missing)"
                hashes[message_id] = hashlib.sha256(raw).hexdigest()
        commented = {row[0] for row in db.execute(
            "SELECT DISTINCT m.message_id FROM messages m JOIN comments c ON c.message_id = m.id")}
        return counts, hashes, commented
    finally:
        db.close()


def _count_store(report: Report, store: Path, expected: dict[str, bytes]) -> Counter[str]:
    """Fill `report` from the store: each expected message lost, stored, half-stored; duplicates."""
    counts, hashes, commented = _store_counts(store)
    for marker, raw in expected.items():
        key = f"{marker}@crash"
        if counts[key] == 0:
            report.lost += 1
            continue
        report.stored += 1
        if hashes[key] != hashlib.sha256(raw).hexdigest() or key not in commented:
            report.half_stored += 1
    report.duplicated = sum(1 for c in counts.values() if c > 1)
    return counts


# --- (a) SMTP ---------------------------------------------------------------------------------

def smtp_crash(work: Path, kills: int, senders: int = 4, size: int = 2000, kill: str = "daemon") -> Report:
    """Senders send messages of `size` bytes (above 1 MiB they are spooled to files as they arrive);
    `kill`: "daemon" (killed and started again), or "workers" (one of its SMTP worker processes)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "prostoy-mail.toml"
    # Every message also opens a task (a global new_task rule): none may be left without its
    # first comment, and none opened twice.
    config.write_text(config_text(
        domain="crash.test", listen={"smtp": f"127.0.0.1:{port}"}, mailboxes=["box"],
        smtp={"max_connections_per_ip": 1000, "max_message_size": max(size * 2, 10 << 20), "workers": 2},
        routing={"new_tasks_per_sender_per_hour": 100_000},
        rules=[{"name": "tickets", "action": "new_task", "project": "Tickets"}]))
    subprocess.run([CLI, "--config", str(config), "project", "add", "Tickets"], check=True, capture_output=True)
    daemon = DaemonProcess(config, port)
    daemon.start()
    stop = threading.Event()
    acked: dict[str, bytes] = {}
    lock = threading.Lock()

    def send(thread: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            marker = f"smtp-{thread}-{number}"
            raw = message(marker, size)
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("load@client.example", ["box@crash.test"], raw)
            except (OSError, smtplib.SMTPException):
                continue  # no 250: not acknowledged (a real client would retry; this one moves on)
            with lock:
                acked[marker] = raw

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    survived = (kill_workers_loop if kill == "workers" else kill_loop)(daemon, kills, stop)
    for t in threads:
        t.join()
    daemon.stop()
    name = "smtp" if kill == "daemon" else "smtp-workers"
    counts = _count_store(report := Report(name, survived, len(acked)), work / "store.db", acked)
    report.extra["stored but not acknowledged"] = sum(1 for k in counts if k.removesuffix("@crash") not in acked)
    report.extra.update(_task_counts(work / "store.db", acked))
    report.extra["tracebacks"] = daemon.tracebacks()
    return report


def _task_counts(store: Path, acked: dict[str, bytes]) -> dict[str, int]:
    """The tasks the new_task rule opened: one per stored message, each with its first comment."""
    db = sqlite3.connect(store)
    try:
        opened = Counter(str(row[0]) for row in db.execute("SELECT opened_by FROM conversations"))
        bare = db.execute("SELECT count(*) FROM conversations v WHERE NOT EXISTS"
                          " (SELECT 1 FROM comments c WHERE c.task_id = v.task_id)").fetchone()[0]
        kinds = db.execute("SELECT count(*) FROM tasks WHERE kind = 'conversation'").fetchone()[0]
    finally:
        db.close()
    return {"tasks opened twice": sum(1 for n in opened.values() if n > 1),
            "tasks without their first comment": int(bare) + abs(int(kinds) - sum(opened.values())),
            "acknowledged without their task": sum(1 for marker in acked if f"{marker}@crash" not in opened)}


# --- (b) fetching from a gateway (Dovecot), deleting after the commit -------------------------

def fetch_crash(work: Path, kills: int, messages: int = 200) -> Report:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.dovecot import Dovecot

    work.mkdir(parents=True, exist_ok=True)
    login = "box@gw.test"
    dovecot = Dovecot({login: "box-pw"}).start()
    try:
        port = free_port()
        config = work / "prostoy-mail.toml"
        config.write_text(config_text(domain="crash.test", listen={"smtp": f"127.0.0.1:{port}"},
                                      fetch={**QUICK_FETCH, "idle_renew": 2}) + "\n"
                          + dovecot.gateway_toml(login, options="keep_on_server = false\nimport_since = 2000-01-01"))
        daemon = DaemonProcess(config, port)
        daemon.start()
        stop = threading.Event()
        appended: dict[str, bytes] = {}

        def append() -> None:
            client = dovecot.client(login)
            try:
                for number in range(messages):
                    marker = f"fetch-{number}"
                    raw = message(marker)
                    status, _ = client.append("INBOX", None, None, raw)
                    assert status == "OK"
                    appended[marker] = raw
                    time.sleep(0.01)
            finally:
                client.logout()

        appender = threading.Thread(target=append)
        appender.start()
        survived = kill_loop(daemon, kills, stop)
        appender.join()
        deadline = time.monotonic() + 60  # then let it finish: all fetched, all deleted on the server
        while time.monotonic() < deadline:
            counts, _, _ = _store_counts(work / "store.db")
            if sum(1 for m in appended if counts[f"{m}@crash"]) == len(appended) and not dovecot.messages(login):
                break
            time.sleep(0.2)
        daemon.stop()
        _count_store(report := Report("fetch", survived, len(appended)), work / "store.db", appended)
        report.extra["left on the server"] = len(dovecot.messages(login))
        report.extra["tracebacks"] = daemon.tracebacks()
        return report
    finally:
        dovecot.stop()


# --- (c) the outbound spool delivering to an SMTP peer -------------------------------------------

def outbound_crash(work: Path, kills: int, senders: int = 2) -> Report:
    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import Envelope

    work.mkdir(parents=True, exist_ok=True)
    received: list[str] = []
    lock = threading.Lock()

    class Peer:  # the external SMTP server (a test peer; a Controller thread is fine here)
        async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
            raw = envelope.original_content or b""
            marker = raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()
            with lock:
                received.append(marker)
            return "250 2.0.0 Ok"

    peer_port = free_port()
    peer = Controller(Peer(), hostname="127.0.0.1", port=peer_port)
    peer.start()
    ca = trustme.CA()
    write_server_pair(ca, work, "localhost", "127.0.0.1")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    port = free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(
        domain="crash.test", listen={"submission": f"127.0.0.1:{port}"}, tls={"cert": "cert.pem", "key": "key.pem"},
        outbound={"retry_initial": 0.2, "retry_max": 1, "poll_interval": 0.5},
        relay={"host": "127.0.0.1", "port": peer_port, "security": "none"}, mailboxes=["box"]))
    (work / "pw").write_text("pw\n")
    subprocess.run([CLI, "--config", str(config), "user", "add", "u", "--password-file", str(work / "pw")],
                   check=True, capture_output=True)
    daemon = DaemonProcess(config, port)
    daemon.start()
    stop = threading.Event()
    acked: set[str] = set()

    def submit(thread: int) -> None:
        number = 0
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.starttls(context=client_context)
                    client.login("u", "pw")
                    for _ in range(5):  # a few messages per session, as a mail client does
                        number += 1
                        marker = f"out-{thread}-{number}"
                        raw = message(marker).replace(b"From: load@client.example", b"From: box@crash.test")
                        client.sendmail("box@crash.test", ["someone@far.example"], raw)
                        acked.add(marker)
            except (OSError, smtplib.SMTPException):
                continue

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    survived = kill_loop(daemon, kills, stop, 0.5, 1.5)
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not acked <= set(received):
        time.sleep(0.2)
    daemon.stop()
    peer.stop()
    counts = Counter(m.removesuffix("@crash") for m in received)
    report = Report("outbound", survived, len(acked))
    report.stored = sum(1 for m in acked if counts[m])  # here: delivered to the peer
    report.lost = len(acked) - report.stored
    report.duplicated = sum(1 for c in counts.values() if c > 1)
    report.extra["tracebacks"] = daemon.tracebacks()
    return report


def webhook_crash(work: Path, kills: int, senders: int = 2) -> Report:
    """Mail arrives over SMTP (each message an event) while the daemon POSTs the events to a
    webhook and is killed at random moments: afterwards every event of the store has reached
    the receiver at least once, and the receiver got no event the store does not have."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    work.mkdir(parents=True, exist_ok=True)
    received: list[int] = []
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                received.append(int(self.headers["X-Prostoy-Event-Id"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    config = work / "prostoy-mail.toml"
    config.write_text(config_text(
        domain="crash.test", listen={"smtp": f"127.0.0.1:{port}"}, mailboxes=["box"],
        smtp={"max_connections_per_ip": 1000, "workers": 0}, fetch={"private_servers": True},
        api={"webhook_retry_initial": 0.1, "webhook_retry_max": 0.5}))
    from prostoy_mail.store.sqlite import SqliteStore

    store = SqliteStore(work / "store.db")
    store.add_webhook(store.file_organisation_id(), f"http://127.0.0.1:{receiver.server_port}/hook", "s" * 16, [])
    store.close()
    daemon = DaemonProcess(config, port)
    daemon.start()
    stop = threading.Event()
    acked: set[str] = set()

    def send(thread: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            marker = f"hook-{thread}-{number}"
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("load@client.example", ["box@crash.test"], message(marker))
            except (OSError, smtplib.SMTPException):
                continue
            with lock:
                acked.add(marker)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    survived = kill_loop(daemon, kills, stop)
    for t in threads:
        t.join()
    db = sqlite3.connect(work / "store.db")
    try:
        events = {int(i) for (i,) in db.execute("SELECT id FROM events WHERE type = 'comment.created'")}
        with_event = {str(m) for (m,) in db.execute(
            "SELECT m.message_id FROM events e JOIN comments c ON c.id = e.object_id"
            " JOIN messages m ON m.id = c.message_id WHERE e.type = 'comment.created'")}
    finally:
        db.close()
    deadline = time.monotonic() + 60  # (the restarted daemon catches up with what it had not sent)
    while time.monotonic() < deadline and not events <= set(received):
        time.sleep(0.1)
    daemon.stop()
    receiver.shutdown()
    counts = Counter(received)
    report = Report("webhooks", survived, len(events))
    report.stored = len(events & set(counts))  # here: delivered to the receiver
    report.lost = len(events - set(counts))
    report.extra["acknowledged messages without their event"] = sum(
        1 for m in acked if f"{m}@crash" not in with_event)
    report.extra["events invented"] = len(set(counts) - events)
    report.extra["delivered again after a kill"] = sum(1 for c in counts.values() if c > 1)
    report.extra["tracebacks"] = daemon.tracebacks()
    return report


if __name__ == "__main__":  # python tests/crash.py smtp|fetch|outbound|webhooks KILLS
    import tempfile
    kind, count = sys.argv[1], int(sys.argv[2])
    fn = {"smtp": smtp_crash, "fetch": fetch_crash, "outbound": outbound_crash, "webhooks": webhook_crash}[kind]
    print(fn(Path(tempfile.mkdtemp(prefix=f"pm-crash-{kind}-")), count).line())
    os._exit(0)
