"""`task send` and `queue list|retry|drop` through the installed command line (no daemon running)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli


def _prepared(cli: Cli, tmp_path: Path) -> Path:
    cli("mailbox", "add", "sales")
    cli("project", "add", "Deals")
    cli("task", "add", "Deals", "Big one")
    body = tmp_path / "body.txt"
    body.write_text("Добрый день!\nЦена: 100.\n", "utf-8")
    return body


def test_task_send_queues_an_outgoing_comment_with_a_signed_id(cli: Cli, tmp_path: Path) -> None:
    body = _prepared(cli, tmp_path)
    out = cli("task", "send", "Deals/Big one", "--from", "sales@example.test", "--to", "client@far.example",
              "--bcc", "boss@far.example", "--subject", "Предложение", "--body-file", str(body)).out
    assert out.startswith("queued as 1: <pm.")
    (comment,) = cli("task", "comments", "Deals/Big one", "--json").json()
    assert comment["direction"] == "out" and comment["subject"] == "Предложение"
    assert comment["routed_by"] == ["task"] and comment["message_id"].startswith("pm.")
    assert comment["text"].startswith("Добрый день!") and comment["to"] == ["client@far.example"]
    (entry,) = cli("queue", "list", "--json").json()
    assert entry["state"] == "queued" and entry["sender"] == "sales@example.test" and entry["route"] == "relay"
    assert entry["envelope_from"].startswith("sales+t") and entry["task"] == comment["task"]
    assert [(r["address"], r["state"]) for r in entry["recipients"]] == [
        ("client@far.example", "pending"), ("boss@far.example", "pending")]
    assert "boss@far.example" not in cli("task", "comments", "Deals/Big one").out  # Bcc stays hidden

    assert cli("queue", "retry", "1").out.startswith("1 message(s)")
    assert "dropped; 2 recipients" in cli("queue", "drop", "1").out
    assert cli("queue", "list", "--json").json() == []
    (dropped,) = cli("queue", "list", "--all", "--json").json()
    assert dropped["state"] == "dropped" and {r["state"] for r in dropped["recipients"]} == {"dropped"}
    again = cli("queue", "drop", "1", ok=False)
    assert again.code == 1 and "message 1 is dropped, not queued" in again.err


def test_task_send_errors_are_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    body = _prepared(cli, tmp_path)
    unknown = cli("task", "send", "Deals/Big one", "--from", "nobody@example.test", "--to", "a@b.example",
                  "--subject", "s", "--body-file", str(body), ok=False)
    assert unknown.code == 1 and "--from nobody@example.test: not a domain mailbox or gateway here" in unknown.err
    missing = cli("task", "send", "Deals/Big one", "--from", "sales@example.test", "--to", "a@b.example",
                  "--subject", "s", "--body-file", str(tmp_path / "nope.txt"), ok=False)
    assert missing.code == 1 and "nope.txt: cannot read the body" in missing.err
    no_task = cli("task", "send", "Deals/Other", "--from", "sales@example.test", "--to", "a@b.example",
                  "--subject", "s", "--body-file", str(body), ok=False)
    assert no_task.code == 1 and 'no task "Deals/Other"' in no_task.err
    assert cli("queue", "retry", "7", ok=False).err.strip() == "prostoy-mail: no message 7 in the outbound queue"
    injected = cli("task", "send", "Deals/Big one", "--from", "sales@example.test", "--to", "a@b.example",
                   "--subject", "hi\r\nBcc: spy@evil.example", "--body-file", str(body), ok=False)
    assert injected.code == 1 and injected.err.strip() == (
        "prostoy-mail: --subject: a header value cannot hold a line break or another control character")
    bad_to = cli("task", "send", "Deals/Big one", "--from", "sales@example.test", "--to", "a@b.example\nX: y",
                 "--subject", "s", "--body-file", str(body), ok=False)
    assert bad_to.code == 1 and "--to 'a@b.example\\nX: y': not an e-mail address" in bad_to.err


def test_a_corporate_mailbox_for_some_users_only(cli: Cli) -> None:
    cli("user", "add", "petrov", input="")
    assert "added" in cli("mailbox", "add", "buh", "--users", "petrov").out
    (mailbox,) = cli("mailbox", "list", "--json").json()
    assert mailbox["users"] == ["petrov"] and mailbox["kind"] == "corporate"
    unknown = cli("mailbox", "add", "hr", "--users", "nobody", ok=False)
    assert unknown.code == 2 and 'mailboxes[2].users: no user "nobody"' in unknown.err
    both = cli("mailbox", "add", "x", "--owner", "petrov", "--users", "petrov", ok=False)
    assert both.code == 2 and "users is for corporate mailboxes" in both.err


def test_tls_self_signed_writes_a_usable_pair(cli: Cli, tmp_path: Path) -> None:
    import ssl

    missing = cli("tls", "self-signed", ok=False)
    assert missing.code == 1 and "tls: set cert and key" in missing.err
    with open(cli.config, "a") as f:
        f.write('\n[tls]\ncert = "tls/cert.pem"\nkey = "tls/key.pem"\n')
    assert "wrote a self-signed certificate for mx.example.test" in cli("tls", "self-signed").out
    key = tmp_path / "tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls" / "cert.pem", key)  # a matching pair
    assert "nothing done" in cli("tls", "self-signed", "--if-missing").out
