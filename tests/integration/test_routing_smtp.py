"""Routing of mail that arrives over SMTP: rules, replies, charsets, the CLI's view of it."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from prostoy_mail.config_state import CONFIGURATION_STATE, ConfigurationState
from prostoy_mail.intake import REPLY_TOKEN_SECRET
from prostoy_mail.mail.tokens import TaskTokens
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import config_text
from tests.conftest import console_script
from tests.ports import free_port

RULES = """
[[mailboxes]]
login = "sales"

[[mailboxes]]
login = "ivan"
owner = "ivanov"

[[rules]]
name = "spam"
subject = "viagra"
action = "ignore"

[[rules]]
name = "invoices"
subject = "счёт, invoice"
senders = "@client.ru"
action = "comment"
task = "Sales/Invoices"
assign_to = "petrov"
stop = true

[[rules]]
name = "boss-copy"
mailbox = "sales"
recipients = "boss@"
action = "comment"
task = "Sales/Boss"
"""


def setup(store: SqliteStore) -> None:
    store.add_user("ivanov", "Иван", None, is_owner=True)
    store.add_user("petrov", "Пётр", None, is_owner=False)
    store.add_project("Sales")
    store.add_task("Sales", "Invoices")
    store.add_task("Sales", "Boss")


def message(subject: bytes, sender: str = "buh@client.ru", to: str = "sales@example.test", extra: bytes = b"") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\n".encode() + b"Subject: " + subject + b"\r\n" + extra
            + b"\r\nbody\r\n")


async def test_rules_route_mail_into_tasks(mail_server: Any) -> None:
    server = await mail_server(RULES, setup=setup)
    koi8 = "СЧЁТ 7".encode("koi8-r")  # raw 8-bit KOI8-R, upper case: still matches "счёт"
    await server.send("buh@client.ru", ["sales@example.test"], message(koi8))
    [invoice] = server.comments("Sales/Invoices")
    assert invoice.subject == "СЧЁТ 7" and invoice.routed_by == ("invoices",)
    assert server.comments("Mail/sales@example.test") == []  # a global rule matched: no fallback
    store = server.store()
    assert store.resolve_task("Sales/Invoices").assignee == "petrov"  # assign_to
    store.close()

    await server.send("x@other.ru", ["sales@example.test"], message(b"cheap viagra"))
    assert server.count("messages") == 2 and server.count("comments") == 1  # stored, in no task

    await server.send("x@other.ru", ["sales@example.test"], message(b"hello", to="sales@example.test, boss@x.ru"))
    [boss] = server.comments("Sales/Boss")
    assert boss.routed_by == ("boss-copy",)

    await server.send("x@other.ru", ["ivan@example.test"], message(b"=?utf-8?b?" + base64.b64encode(
        "Личное".encode()) + b"?="))
    [personal] = server.comments("Personal/Иван")
    assert personal.subject == "Личное" and personal.routed_by == ("fallback",)


async def test_replies_find_their_task(mail_server: Any) -> None:
    server = await mail_server(RULES, setup=setup)
    store = server.store()
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    boss_task = store.resolve_task("Sales/Boss").id
    signed = tokens.message_id(boss_task, "mx.example.test")
    store.register_sent("recorded-1@mx.example.test", boss_task)
    store.close()

    # a reply to a Message-ID on record, even with an invoice subject: nothing else is consulted
    await server.send("buh@client.ru", ["sales@example.test"],
                      message("Re: счёт".encode(), extra=b"In-Reply-To: <recorded-1@mx.example.test>\r\n"))
    # a reply naming a signed Message-ID in References
    await server.send("x@other.ru", ["sales@example.test"],
                      message(b"Re: hi", extra=f"References: <a@b> <{signed}>\r\n".encode()))
    # a reply to the signed reply address
    address = tokens.reply_address("sales", boss_task, "example.test")
    await server.send("x@other.ru", [address], message(b"Re: hi again", to=address))
    replies = server.comments("Sales/Boss")
    assert [c.subject for c in replies] == ["Re: счёт", "Re: hi", "Re: hi again"]
    assert all(c.routed_by == ("reply",) for c in replies)
    assert server.comments("Sales/Invoices") == []

    # forged tokens and a task number in the subject are not trusted
    forged = signed.replace(f"pm.{boss_task}.", f"pm.{boss_task + 1}.")
    await server.send("x@other.ru", ["sales@example.test"],
                      message(f"Re: [task {boss_task}]".encode(), extra=f"In-Reply-To: <{forged}>\r\n".encode()))
    assert len(server.comments("Sales/Boss")) == 3
    [fallback] = server.comments("Mail/sales@example.test")
    assert fallback.routed_by == ("fallback",)


def await_refusal(config: Path, pid: int, timeout: float = 20.0) -> ConfigurationState:
    """Until the daemon `pid` records that it refused its configuration file (config_state.py)."""
    deadline = time.monotonic() + timeout
    store = SqliteStore(config.parent / "store.db")
    try:
        while time.monotonic() < deadline:
            state = ConfigurationState.from_json(store.setting(CONFIGURATION_STATE))
            if state is not None and state.pid == pid and state.refused is not None:
                return state
            time.sleep(0.05)
    finally:
        store.close()
    raise AssertionError("the daemon did not record a refusal")


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60)


async def test_task_comments_json_shows_routing(mail_server: Any) -> None:
    server = await mail_server(RULES, setup=setup)
    await server.send("", ["sales@example.test"], message(b"Undelivered: invoice", sender="MAILER-DAEMON@x.ru"))
    result = run_cli(server.config_path, "task", "comments", "Mail/sales@example.test", "--json")
    assert result.returncode == 0, result.stderr
    [comment] = json.loads(result.stdout)
    assert {"id", "task", "direction", "message_id", "subject", "from", "to", "date", "text", "attachments",
            "source", "routed_by", "bounce", "auto_reply"} <= set(comment)
    assert comment["bounce"] and comment["routed_by"] == ["fallback"] and comment["source"] == "smtp"
    assert comment["direction"] == "in" and comment["to"] == ["sales@example.test"]


async def test_rule_explain_shows_why_and_stores_nothing(mail_server: Any, tmp_path: Path) -> None:
    server = await mail_server(RULES, setup=setup)
    eml = tmp_path / "invoice.eml"
    eml.write_bytes(message("Счёт 15".encode(), to="sales@example.test, boss@x.ru"))
    result = run_cli(server.config_path, "rule", "explain", str(eml))
    assert result.returncode == 0, result.stderr
    assert "no    [global] spam: subject: none of viagra" in result.stdout
    assert 'MATCH [global] invoices: subject: "счёт"; senders: "@client.ru"' in result.stdout
    assert "Lands in: task" in result.stdout and "(Sales/Invoices) by invoices, assigned to petrov" in result.stdout
    as_json = json.loads(run_cli(server.config_path, "rule", "explain", str(eml), "--json").stdout)
    assert as_json["through"] == ["mailbox:sales"] and [t["ref"] for t in as_json["lands_in"]] == ["Sales/Invoices"]
    other = json.loads(run_cli(server.config_path, "rule", "explain", str(eml.with_name("x.eml")), "--json").stdout
                       or "null")
    assert other is None
    eml.write_bytes(message(b"hello", sender="a@b.ru", to="boss@x.ru"))
    via_mailbox = json.loads(run_cli(server.config_path, "rule", "explain", str(eml), "--mailbox", "sales",
                                     "--json").stdout)
    assert [t["routed_by"] for t in via_mailbox["lands_in"]] == [["boss-copy"]]
    assert server.count("messages") == 0


SPOOF_RULES = RULES + """
[[rules]]
name = "blocked-sender"
senders = "spammer@"
action = "ignore"
"""
# "Boss <buh@client.ru>," and "spammer@" as encoded display names before the real address
SPOOFED_CLIENT = "=?utf-8?B?" + base64.b64encode(b"Boss <buh@client.ru>,").decode() + "?= <attacker@evil.example>"
SPOOFED_SPAMMER = "=?utf-8?Q?spammer@evil.example?= <Other@Evil.Example>"


async def test_a_spoofed_display_name_neither_routes_nor_escapes_a_rule(mail_server: Any, tmp_path: Path) -> None:
    """A decoded display name is never an address: not for rules, not for what is stored,
    not for `rule explain` (RFC 2047 §5)."""
    server = await mail_server(SPOOF_RULES, setup=setup)
    await server.send("attacker@evil.example", ["sales@example.test"], message(b"invoice 1", sender=SPOOFED_CLIENT))
    assert server.comments("Sales/Invoices") == []  # the senders = "@client.ru" rule did not match
    [landed] = server.comments("Mail/sales@example.test")
    assert landed.from_addr == "attacker@evil.example" and "buh@client.ru" in landed.from_name

    await server.send("spammer@evil.example", ["sales@example.test"], message(b"hi", sender="spammer@evil.example"))
    assert len(server.comments("Mail/sales@example.test")) == 1  # the ignore rule holds for the real address...
    await server.send("x@evil.example", ["sales@example.test"], message(b"hi 2", sender=SPOOFED_SPAMMER))
    assert [c.from_addr for c in server.comments("Mail/sales@example.test")] == [
        "attacker@evil.example", "other@evil.example"]  # ...and a display name alone is not the sender

    eml = tmp_path / "spoofed.eml"
    eml.write_bytes(message(b"invoice 2", sender="owner@example.test <attacker@evil.example>"))
    explained = json.loads(run_cli(server.config_path, "rule", "explain", str(eml), "--json").stdout)
    assert explained["from"] == "attacker@evil.example"
    assert [t["ref"] for t in explained["lands_in"]] == ["Mail/sales@example.test"]


def test_rules_change_on_sighup_without_dropping_a_session(tmp_path: Path) -> None:
    """The daemon as a process: a reload applies new rules; a broken config keeps the old ones."""
    import smtplib

    port = free_port()
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(listen={"smtp": f"127.0.0.1:{port}"}, mailboxes=["sales"]))
    assert run_cli(config, "project", "add", "Sales").returncode == 0
    assert run_cli(config, "task", "add", "Sales", "Urgent").returncode == 0
    daemon = subprocess.Popen([console_script(), "--config", str(config), "serve"], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        client.ehlo()  # this session stays open across the reload
        client.sendmail("a@b.ru", ["sales@example.test"], message(b"urgent 1"))
        with config.open("a") as f:
            f.write('[[rules]]\nname = "urgent"\nsubject = "urgent"\naction = "comment"\ntask = "Sales/Urgent"\n')
        reloaded = run_cli(config, "reload")  # SIGHUP, and the daemon's word
        assert reloaded.returncode == 0, reloaded.stderr
        assert re.fullmatch(r"the running daemon \(PID \d+\) applied \S+ \(configuration generation 2\)\n",
                            reloaded.stdout), reloaded.stdout
        client.sendmail("a@b.ru", ["sales@example.test"], message(b"urgent 2"))
        good = config.read_text()
        config.write_text(good + "\n[[rules]]\nname = broken\n")
        refused = run_cli(config, "reload")  # checked here: the daemon is not even told
        assert refused.returncode == 2 and "not valid TOML" in refused.stderr, refused.stderr
        daemon.send_signal(signal.SIGHUP)  # told anyway: it refuses the file and says so
        await_refusal(config, daemon.pid)
        client.sendmail("a@b.ru", ["sales@example.test"], message(b"urgent 3"))
        client.quit()
        config.write_text(good)
        urgent = json.loads(run_cli(config, "task", "comments", "Sales/Urgent", "--json").stdout)
        assert [c["subject"] for c in urgent] == ["urgent 2", "urgent 3"]
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "reload refused, keeping the running configuration" in err and "not valid TOML" in err
    assert "Traceback" not in err
    assert os.path.exists(tmp_path / "store.db")


def test_reload_says_when_the_daemon_refuses_and_the_old_listener_goes_on(tmp_path: Path) -> None:
    """What only the daemon can find out (a port taken by someone else) is refused there:
    `reload` says so and why, exit 1; nothing the daemon runs has changed (the same generation)."""
    import smtplib
    import socket

    port = free_port()
    config = tmp_path / "prostoy-mail.toml"
    text = config_text(listen={"smtp": f"127.0.0.1:{port}"}, mailboxes=["sales"])
    config.write_text(text)
    assert run_cli(config, "reload").stderr == "prostoy-mail: no daemon is running on this store: nothing to reload\n"
    daemon = subprocess.Popen([console_script(), "--config", str(config), "serve"], stderr=subprocess.PIPE, text=True)
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for _ in range(100):
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=10).quit()
                break
            except OSError:
                time.sleep(0.1)
        config.write_text(text.replace(f":{port}", f":{taken.getsockname()[1]}"))
        refused = run_cli(config, "reload")
        assert refused.returncode == 1, refused
        assert re.fullmatch(rf"prostoy-mail: the running daemon \(PID {daemon.pid}\) refused "
                            rf"{re.escape(str(config))} and runs as before: listen.smtp: cannot listen on "
                            rf"127.0.0.1:\d+: Address already in use\n", refused.stderr), refused.stderr
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:  # the old listener, untouched
            assert client.sendmail("a@b.ru", ["sales@example.test"], message(b"still here")) == {}
        config.write_text(text)
        again = run_cli(config, "reload")
        assert again.stdout.endswith("(configuration generation 2)\n"), again  # the refusal applied nothing
    finally:
        taken.close()
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0 and "Traceback" not in err, err


async def test_a_file_changed_while_the_daemon_starts_is_read_again(tmp_path: Path) -> None:
    """A command's edit can land between the daemon reading its file and it counting the changes
    so far: it then reads the file again at once rather than run the old one until the next."""
    from prostoy_mail.config.load import load_config
    from prostoy_mail.daemon import Daemon
    from tests.waiting import until

    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(mailboxes=["sales"]))
    daemon = Daemon(load_config(config))
    config.write_text(config_text(mailboxes=["sales", "support"]))  # (after the daemon read it)
    await daemon.start()
    try:
        await until(lambda: daemon.config.mailbox("support") is not None)
        assert daemon.generation == 2
    finally:
        await daemon.stop()
