"""prostoy-mail as systemd runs it: a real process, the notify socket, signals, logs, metrics."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from tests.config_factory import config_text
from tests.conftest import console_script
from tests.ports import free_port, wait_port
from tests.tls_files import write_server_pair

REPO = Path(__file__).resolve().parents[2]


@dataclass
class NotifySocket:
    """What systemd would receive: every datagram, with the time it came."""

    path: Path
    messages: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode("utf-8")))

    def wait_for(self, field_text: str, after: float = 0.0, timeout: float = 20.0) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, message in list(self.messages):
                if when >= after and field_text in message.split("\n"):
                    return when, message
            time.sleep(0.02)
        raise AssertionError(f"no {field_text} within {timeout}s; got {self.messages}")

    def count(self, field_text: str, start: float, end: float) -> int:
        return sum(1 for when, m in self.messages if start <= when < end and field_text in m.split("\n"))

    def close(self) -> None:
        self.running = False
        self.sock.close()


@dataclass
class Service:
    process: subprocess.Popen[str]
    notify: NotifySocket
    config: Path
    smtp_port: int
    metrics_port: int
    stderr_lines: list[str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([console_script(), "--config", str(self.config), *args], capture_output=True,
                              text=True, timeout=60)




def service_config(smtp: int, metrics: int, imap: int | None = None) -> str:
    """The service's configuration: SMTP and metrics on these ports (and IMAP, with [tls])."""
    listen = {"smtp": f"127.0.0.1:{smtp}", "metrics": f"127.0.0.1:{metrics}"}
    if imap is None:
        return config_text(daemon={"mail_project": "Почта"}, mailboxes=["sales"], listen=listen)
    return config_text(daemon={"mail_project": "Почта"}, mailboxes=["sales"],
                       listen={**listen, "imap": f"127.0.0.1:{imap}"}, tls={"cert": "cert.pem", "key": "key.pem"})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    smtp_port, metrics_port = free_port(), free_port()
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(service_config(smtp_port, metrics_port))
    for args in (("project", "add", "Продажи"), ("task", "add", "Продажи", "Счета")):
        subprocess.run([console_script(), "--config", str(config), *args], check=True, capture_output=True)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000", "JOURNAL_STREAM": "8:1234"}
    process = subprocess.Popen([console_script(), "--config", str(config), "serve"], env=env,
                               stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    running = Service(process, notify, config, smtp_port, metrics_port, lines)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        reader.join(5)
        notify.close()


def send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@b.ru", ["sales@example.test"],
                        f"From: a@b.ru\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())


def test_ready_only_when_listening_then_status_watchdog_reload_stop(service: Service) -> None:
    _, ready = service.notify.wait_for("READY=1")
    # READY came after the listener was bound: the port accepts at once
    with socket.create_connection(("127.0.0.1", service.smtp_port), timeout=5) as probe:
        assert probe.recv(100).startswith(b"220 ")
    assert any(line.startswith("STATUS=") and f"smtp 127.0.0.1:{service.smtp_port}" in line
               and line.endswith("configuration generation 1") for line in ready.split("\n"))

    # watchdog: interval 0.4 s, so a ping every 0.2 s
    start = time.monotonic()
    time.sleep(2.0)
    pings = service.notify.count("WATCHDOG=1", start, start + 2.0)
    assert 6 <= pings <= 12, pings

    # a session stays open across a reload that changes the rules
    session = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)
    session.ehlo()
    with service.config.open("a") as f:
        f.write('\n[[rules]]\nname = "invoices"\nsubject = "счёт"\naction = "comment"\ntask = "Продажи/Счета"\n')
    before_reload = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    reloading_at, reloading = service.notify.wait_for("RELOADING=1", after=before_reload)
    assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.MULTILINE)
    _, reloaded = service.notify.wait_for("READY=1", after=reloading_at)
    assert "configuration generation 2" in reloaded  # (STATUS= with the generation in effect)
    session.sendmail("a@b.ru", ["sales@example.test"], "Subject: Счёт 15\r\n\r\nbody\r\n".encode())
    session.quit()
    routed = service.cli("task", "comments", "Продажи/Счета", "--json")
    assert '"routed_by": [\n      "invoices"' in routed.stdout

    # STATUS in Cyrillic arrives intact (UTF-8): the last task mail went to
    before = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    _, status = service.notify.wait_for("READY=1", after=before)
    assert "1 messages routed today, last to «Продажи/Счета»" in status

    # a broken configuration is refused; the daemon keeps running on the old one
    good = service.config.read_text()
    service.config.write_text(good + "\n[[rules]]\nname = \"x\"\naction = \"comment\"\ntask = \"Нет/Такой\"\n")
    before = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    service.notify.wait_for("READY=1", after=before)
    send(service.smtp_port, "счёт again")
    assert service.cli("check").returncode == 2  # what the daemon refused, `check` names
    service.config.write_text(good)
    assert service.cli("task", "comments", "Продажи/Счета", "--json").stdout.count('"invoices"') == 2

    # stop: STOPPING=1, exit status 0
    before = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    service.notify.wait_for("STOPPING=1", after=before)
    assert service.process.wait(30) == 0
    log = "".join(service.stderr_lines)
    assert 'rules[2].task: no task "Нет/Такой"' in log and "reload refused" in log
    # journald-friendly: every line carries its priority, no timestamps of our own
    assert all(re.match(r"^<[0-7]>", line) for line in service.stderr_lines), service.stderr_lines[:5]
    assert "Traceback" not in log


def test_no_watchdog_ping_while_the_store_writer_or_the_process_is_stuck(service: Service) -> None:
    service.notify.wait_for("READY=1")
    time.sleep(0.5)
    db = sqlite3.connect(service.config.parent / "store.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")  # the writer cannot take the store's write lock
    time.sleep(0.5)  # a ping already on its way may still arrive
    start = time.monotonic()
    time.sleep(1.5)
    assert service.notify.count("WATCHDOG=1", start, start + 1.5) == 0
    db.execute("ROLLBACK")
    db.close()
    resumed_from = time.monotonic()
    service.notify.wait_for("WATCHDOG=1", after=resumed_from, timeout=12)

    service.process.send_signal(signal.SIGSTOP)  # the whole process stuck, its loop included
    start = time.monotonic()
    time.sleep(1.0)
    assert service.notify.count("WATCHDOG=1", start + 0.1, start + 1.0) == 0
    service.process.send_signal(signal.SIGCONT)
    service.notify.wait_for("WATCHDOG=1", after=time.monotonic(), timeout=5)


def test_metrics_count_accepted_rejected_and_routed(service: Service) -> None:
    service.notify.wait_for("READY=1")
    send(service.smtp_port, "hello")
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client, pytest.raises(
            smtplib.SMTPRecipientsRefused):
        client.sendmail("a@b.ru", ["nobody@example.test"], b"Subject: x\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while True:  # (SMTP workers tell the daemon of their connections a tenth of a second later)
        text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10).read().decode()
        settled = 'prostoy_mail_smtp_connections_total{listener="smtp"} 2.0' in text \
            and "prostoy_mail_smtp_sessions 0.0" in text
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 'prostoy_mail_messages_accepted_total{organisation="main",via="smtp"} 1.0' in text
    assert 'prostoy_mail_messages_rejected_total{reason="unknown_recipient"} 1.0' in text
    assert 'prostoy_mail_messages_routed_total{by="fallback",organisation="main"} 1.0' in text
    assert 'prostoy_mail_smtp_connections_total{listener="smtp"} 2.0' in text
    assert "prostoy_mail_smtp_sessions 0.0" in text
    assert "prostoy_mail_config_generation 1.0" in text


def test_the_unit_is_sandboxed_to_1_5_or_better() -> None:
    unit = REPO / "systemd" / "prostoy-mail.service"
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=15", str(unit)],
                            capture_output=True, text=True, timeout=120)
    level = re.search(r"Overall exposure level for prostoy-mail.service: (\d+\.\d)", result.stdout)
    assert level is not None, result.stdout + result.stderr
    assert float(level[1]) <= 1.5 and result.returncode == 0, result.stdout[-500:]
    text = unit.read_text()
    for directive in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=",
                      "AmbientCapabilities=CAP_NET_BIND_SERVICE", "StateDirectory=prostoy-mail", "User=prostoy-mail"):
        assert directive in text, directive


@pytest.mark.parametrize("signalled", ["daemon", "every process"])
def test_a_session_in_data_finishes_when_the_daemon_is_stopped(service: Service, signalled: str) -> None:
    """systemd's stop sends SIGTERM to every process of the service, the SMTP workers too."""
    service.notify.wait_for("READY=1")
    pid = service.process.pid
    workers = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    with socket.create_connection(("127.0.0.1", service.smtp_port), timeout=30) as s:
        f = s.makefile("rwb")
        f.readline()
        for command in (b"EHLO c", b"MAIL FROM:<a@b.ru>", b"RCPT TO:<sales@example.test>", b"DATA"):
            f.write(command + b"\r\n")
            f.flush()
            while (reply := f.readline())[3:4] == b"-":
                pass
        assert reply.startswith(b"354")
        f.write(b"Subject: half\r\n\r\nfirst half\r\n")
        f.flush()
        before = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        if signalled == "every process":
            for worker in workers:
                os.kill(worker, signal.SIGTERM)
        service.notify.wait_for("STOPPING=1", after=before)
        with pytest.raises(OSError):  # no new sessions once stopping
            socket.create_connection(("127.0.0.1", service.smtp_port), timeout=2).close()
        f.write(b"second half\r\n.\r\n")
        f.flush()
        assert f.readline().startswith(b"250 2.0.0")
    assert service.process.wait(30) == 0
    comments = service.cli("task", "comments", "Почта/sales@example.test", "--json").stdout
    assert "first half\\nsecond half" in comments


def test_reload_moves_a_listener_without_dropping_its_sessions(service: Service) -> None:
    service.notify.wait_for("READY=1")
    old_port, new_port = service.smtp_port, free_port()
    session = smtplib.SMTP("127.0.0.1", old_port, timeout=30)
    session.ehlo()
    service.config.write_text(service.config.read_text().replace(f"127.0.0.1:{old_port}", f"127.0.0.1:{new_port}"))
    before = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    service.notify.wait_for("READY=1", after=before)
    send(new_port, "on the new port")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
    session.sendmail("a@b.ru", ["sales@example.test"], b"Subject: old session\r\n\r\nstill here\r\n")
    session.quit()
    subjects = service.cli("task", "comments", "Почта/sales@example.test", "--json").stdout
    assert '"subject": "on the new port"' in subjects and '"subject": "old session"' in subjects


def test_reload_applies_new_smtp_limits_to_new_sessions(service: Service) -> None:
    service.notify.wait_for("READY=1")
    before = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)  # opened with the old limits
    before.ehlo()
    with service.config.open("a") as f:
        f.write("\n[smtp]\nmax_connections_per_ip = 1\nmax_recipients = 1\n")
    started = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    service.notify.wait_for("READY=1", after=started)
    with socket.create_connection(("127.0.0.1", service.smtp_port), timeout=10) as second:
        assert second.recv(200).startswith(b"421 4.7.0")  # one per address now, and the old session counts
    before.mail("a@b.ru")  # the old session goes on
    assert before.rcpt("sales@example.test")[0] == 250
    before.quit()
    deadline = time.monotonic() + 10
    while True:  # (the server counts the old session out once it has seen it close)
        try:
            client = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)
            break
        except smtplib.SMTPConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with client:
        with socket.create_connection(("127.0.0.1", service.smtp_port), timeout=10) as second:
            assert second.recv(200).startswith(b"421 4.7.0")
        client.ehlo()
        client.mail("a@b.ru")
        assert client.rcpt("sales@example.test")[0] == 250
        code, message = client.rcpt("sales+x@example.test")
        assert code == 452 and message.startswith(b"4.5.3")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is left


def test_the_smtp_workers_exit_when_the_daemon_is_killed(service: Service) -> None:
    service.notify.wait_for("READY=1")
    pid = service.process.pid
    workers = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(workers) >= 1
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:  # a session in a worker
        client.ehlo()
        service.process.kill()
        service.process.wait(10)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers))  # nothing is left serving sessions that cannot be stored
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            client.mail("a@b.ru")


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), "--config", str(config), "serve"], capture_output=True, text=True,
                          timeout=60)


def test_a_second_daemon_on_the_same_store_or_address_refuses_to_start(service: Service, tmp_path: Path) -> None:
    """Both would listen (SO_REUSEPORT) and the kernel would split inbound mail between them."""
    service.notify.wait_for("READY=1")
    pid = service.process.pid
    same_store = _serve(service.config)
    assert same_store.returncode == 1
    assert f"another prostoy-mail (PID {pid}) is running on the store" in same_store.stderr, same_store.stderr
    assert "Traceback" not in same_store.stderr

    other = tmp_path / "other"
    other.mkdir()
    (other / "prostoy-mail.toml").write_text(service_config(service.smtp_port, free_port()))
    same_port = _serve(other / "prostoy-mail.toml")
    assert same_port.returncode == 1
    assert (f"listen.smtp: another prostoy-mail (PID {pid}) already listens on 127.0.0.1:{service.smtp_port}"
            in same_port.stderr), same_port.stderr
    assert not (other / "store.db").exists() or "Traceback" not in same_port.stderr
    send(service.smtp_port, "still one daemon")  # the first one is untouched
    assert service.process.poll() is None

    # A port taken by some other program: one line naming the listener and the address, for
    # the SMTP listener (asyncio) and the IMAP one (Twisted: was a 44-line traceback).
    write_server_pair(trustme.CA(), other, "localhost")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        for listener, smtp, imap in (("smtp", taken, free_port()), ("imap", free_port(), taken)):
            (other / "prostoy-mail.toml").write_text(service_config(smtp, free_port(), imap))
            busy = _serve(other / "prostoy-mail.toml")
            assert busy.returncode == 1
            assert f"listen.{listener}: cannot listen on 127.0.0.1:{taken}: Address already in use" in busy.stderr, \
                busy.stderr
            assert "Traceback" not in busy.stderr, busy.stderr


def test_a_command_line_edit_is_live_when_the_command_returns(service: Service) -> None:
    """`mailbox add` tells the running daemon and waits for it: the next mail to the new
    mailbox is taken (before, it got 550 5.1.1 until someone sent SIGHUP)."""
    service.notify.wait_for("READY=1")
    added = service.cli("mailbox", "add", "support")
    assert added.returncode == 0, added.stderr
    assert f"the running daemon (PID {service.process.pid}) applied the change (configuration generation 2)" \
        in added.stderr, added.stderr
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        assert client.sendmail("a@b.ru", ["support@example.test"], b"Subject: at once\r\n\r\nx\r\n") == {}
    rule = service.cli("rule", "add", "invoices", "--subject", "invoice", "--task", "Продажи/Счета")
    assert rule.returncode == 0 and "configuration generation 3" in rule.stderr, rule.stderr
    send(service.smtp_port, "invoice 5")
    comments = service.cli("task", "comments", "Продажи/Счета", "--json")
    assert [c["subject"] for c in json.loads(comments.stdout)] == ["invoice 5"]
    # no signal was sent: the daemon took each change up from the store's change log
    reloaded = re.compile(r"configuration reloaded \(generation 3, on change \d+ in the store\)")
    deadline = time.monotonic() + 10
    while not reloaded.search(log := "".join(service.stderr_lines)) and time.monotonic() < deadline:
        time.sleep(0.02)  # (the daemon's stderr is read by a thread)
    assert reloaded.search(log) and "generation 2, on change" in log, log
    assert "on SIGHUP" not in log


def test_a_reload_that_cannot_open_a_listener_changes_nothing(service: Service, tmp_path: Path) -> None:
    """All or nothing: the new [smtp] limits and the moved listener are not half applied,
    the IMAP listener is not reopened for an [smtp] change, and the refusal is one log line."""
    service.notify.wait_for("READY=1")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        text = service.config.read_text()
        service.config.write_text(text.replace(f"smtp = \"127.0.0.1:{service.smtp_port}\"",
                                               f"smtp = \"127.0.0.1:{service.smtp_port}\"\n"
                                               f"submission = \"127.0.0.1:{taken}\"")
                                  + "\n[smtp]\nmax_recipients = 1\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n")
        write_server_pair(trustme.CA(), service.config.parent, "localhost")
        started = time.monotonic()
        service.process.send_signal(signal.SIGHUP)
        service.notify.wait_for("READY=1", after=started)
    deadline = time.monotonic() + 10
    while not any("reload refused" in line for line in service.stderr_lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = [line for line in service.stderr_lines if "reload refused" in line]
    assert refused and f"listen.submission: cannot listen on 127.0.0.1:{taken}" in refused[0], refused
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("a@b.ru")
        assert client.rcpt("sales@example.test")[0] == 250
        assert client.rcpt("sales+x@example.test")[0] == 250  # max_recipients = 1 was not applied
    assert "Traceback" not in "".join(service.stderr_lines)


def _imap_login(port: int, source: str, login: str, password: str) -> bytes:
    """One LOGIN over IMAPS from `source`: the server's answer line (or its BYE)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as raw, \
            context.wrap_socket(raw) as tls:
        reader = tls.makefile("rb")
        reader.readline()
        tls.sendall(f"a LOGIN {login} {password}\r\n".encode())
        while True:
            line = reader.readline()
            if not line or line.startswith((b"a ", b"* BYE")):
                return line


def test_auth_unblock_forgets_an_addresses_failed_logins(service: Service, tmp_path: Path) -> None:
    service.notify.wait_for("READY=1")
    (tmp_path / "pw").write_text("right-pw\n")
    assert service.cli("user", "add", "ivanov", "--password-file", str(tmp_path / "pw")).returncode == 0
    write_server_pair(trustme.CA(), service.config.parent, "localhost")
    imaps = free_port()
    text = service.config.read_text().replace("[listen]\n", f'[listen]\nimaps = "127.0.0.1:{imaps}"\n')
    service.config.write_text(text + '\n[tls]\ncert = "cert.pem"\nkey = "key.pem"\n[auth]\nmax_failures = 3\n'
                                     "delay_after = 10\n")
    started = time.monotonic()
    service.process.send_signal(signal.SIGHUP)
    service.notify.wait_for("READY=1", after=started)
    answers = [_imap_login(imaps, "127.0.0.5", f"nobody{n}", "x") for n in range(4)]
    assert b"NO" in answers[0] and b"Too many failed logins" in answers[-1], answers
    assert b"a OK" in _imap_login(imaps, "127.0.0.5", "ivanov", "right-pw")  # a known user still may

    result = service.cli("auth", "unblock", "127.0.0.5")
    assert result.returncode == 0 and "127.0.0.5: failed logins forgotten (1 record)" in result.stdout, result
    assert b"Too many" not in _imap_login(imaps, "127.0.0.5", "nobody9", "x")  # counted afresh
    again = service.cli("auth", "unblock", "127.0.0.6")
    assert "127.0.0.6: no failed logins were counted for it" in again.stdout
    assert "not an IP address" in service.cli("auth", "unblock", "mail.example").stderr


def test_auth_unblock_without_a_daemon_says_so(tmp_path: Path) -> None:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(service_config(free_port(), free_port()))
    result = subprocess.run([console_script(), "--config", str(config), "auth", "unblock", "127.0.0.1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "no daemon is running on this store" in result.stdout


def test_the_daemon_raises_its_limit_of_open_files_to_the_hard_one(tmp_path: Path) -> None:
    """A shell's soft limit of 1,024 descriptors would stop a hosting daemon at about 1,000
    gateways; the daemon raises it to the hard limit (the unit's LimitNOFILE=) at its start."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit here is {hard}: nothing to raise it to")
    smtp_port = free_port()
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(listen={"smtp": f"127.0.0.1:{smtp_port}"}, smtp={"workers": 0}))

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    process = subprocess.Popen([console_script(), "--config", str(config), "serve"], preexec_fn=low_soft_limit,
                               stderr=subprocess.DEVNULL)
    try:
        wait_port(smtp_port)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)] or hard == resource.RLIM_INFINITY, line
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
