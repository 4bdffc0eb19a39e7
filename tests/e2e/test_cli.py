"""The command line, through the installed console script, as an admin uses it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Cli


def test_init_writes_a_config_that_checks(cli: Cli) -> None:
    text = cli.config.read_text()
    assert 'domain = "example.test"' in text and text.startswith("# prostoy-mail configuration")
    result = cli("check")
    assert "OK" in result.out and "listeners  smtp 127.0.0.1:2525" in result.out
    again = cli("init", ok=False)
    assert again.code == 1 and "already exists" in again.err


def test_users_projects_tasks(cli: Cli, password_file: Callable[[str], Path]) -> None:
    cli("user", "add", "ivanov", "--name", "Иван Иванов", "--password-file", str(password_file("s3cret")),
        "--owner")
    cli("user", "add", "petrov")  # no password: a CRM user who does not read mail
    users = {u["login"]: u for u in cli("user", "list", "--json").json()}
    assert users["ivanov"] == {"login": "ivanov", "name": "Иван Иванов", "owner": True, "has_password": True,
                               "personal_task": users["ivanov"]["personal_task"]}
    assert not users["petrov"]["has_password"]
    cli("user", "passwd", "petrov", "--password-file", "-", input="new password\n")
    assert {u["login"]: u for u in cli("user", "list", "--json").json()}["petrov"]["has_password"]

    cli("project", "add", "Sales")
    cli("task", "add", "Sales", "Invoices", "--assign", "petrov")
    tasks = cli("task", "list", "--json").json()
    assert {(t["project"], t["title"], t["assignee"], t["kind"]) for t in tasks} == {
        ("Personal", "Иван Иванов", "ivanov", "personal"),
        ("Personal", "petrov", "petrov", "personal"),
        ("Sales", "Invoices", "petrov", "plain"),
    }
    assert set(tasks[0]) >= {"id", "project", "title", "assignee", "kind"}
    shown = cli("task", "show", "Sales/Invoices", "--json").json()
    assert shown["title"] == "Invoices" and shown["comments"] == 0
    assert cli("task", "comments", "Sales/Invoices", "--json").json() == []

    missing = cli("task", "add", "Nope", "x", ok=False)
    assert missing.code == 1 and missing.err.strip() == 'prostoy-mail: no project "Nope"'
    owner = cli("user", "remove", "ivanov", ok=False)
    assert "owner" in owner.err


def test_mailboxes_get_tasks_and_owners_must_exist(cli: Cli) -> None:
    cli("user", "add", "ivanov")
    cli("mailbox", "add", "sales")
    cli("mailbox", "add", "ivan", "--owner", "ivanov")
    boxes = cli("mailbox", "list", "--json").json()
    assert [(b["address"], b["kind"], b["owner"]) for b in boxes] == [
        ("sales@example.test", "corporate", None), ("ivan@example.test", "personal", "ivanov")]
    tasks = {t["id"]: t for t in cli("task", "list", "--json").json()}
    assert tasks[boxes[1]["task"]]["assignee"] == "ivanov" and tasks[boxes[1]["task"]]["kind"] == "mailbox"
    assert tasks[boxes[0]["task"]]["title"] == "sales@example.test"

    before = cli.config.read_text()
    bad = cli("mailbox", "add", "bob", "--owner", "nobody", ok=False)
    assert bad.code == 2
    assert bad.err.strip() == (f'{cli.config}: mailboxes[3].owner: no user "nobody" '
                               "(add it: prostoy-mail user add nobody)")
    assert cli.config.read_text() == before  # nothing written

    used = cli("user", "remove", "ivanov", ok=False)
    assert "still named in the configuration: mailbox ivan" in used.err
    cli("mailbox", "remove", "ivan")
    assert [b["login"] for b in cli("mailbox", "list", "--json").json()] == ["sales"]


def test_gateways_and_servers(cli: Cli, password_file: Callable[[str], Path]) -> None:
    pw = password_file("gateway-secret")
    cli("user", "add", "ivanov")
    cli("gateway", "add", "support@yandex.ru", "--server", "yandex.ru", "--password-file", str(pw),
        "--personal-for", "ivanov", "--mark-read", "--no-keep-on-server")
    [gw] = cli("gateway", "list", "--json").json()
    assert gw["email"] == "support@yandex.ru" and gw["server"] == "yandex.ru" and gw["protocol"] == "imap"
    assert gw["mark_read"] and not gw["keep_on_server"] and gw["forwarding"] and gw["personal_for"] == "ivanov"
    assert "gateway-secret" not in cli("gateway", "list", "--json").out
    assert f'password_file = "{pw}"' in cli.config.read_text()  # the secret stays in its file

    typo = cli("gateway", "add", "x@y.ru", "--server", "yandx.ru", "--password-file", str(pw), ok=False)
    assert typo.code == 2 and 'gateways[2].server: unknown server "yandx.ru" (known: mail.ru' in typo.err
    no_password = cli("gateway", "add", "x@y.ru", "--server", "mail.ru", ok=False)
    assert "needs a password" in no_password.err

    cli("server", "add", "mail.example.org", "--imap", "imap.example.org:993", "--smtp", "smtp.example.org:587",
        "--security", "starttls")
    servers = {s["name"]: s for s in cli("server", "list", "--json").json()}
    assert servers["mail.example.org"]["imap"] == "imap.example.org:993" and not servers["mail.example.org"]["preset"]
    assert servers["yandex.ru"]["used_by"] == ["support@yandex.ru"] and servers["yandex.ru"]["preset"]
    used = [s["name"] for s in cli("server", "list", "--hide-unused", "--json").json()]
    assert used == ["yandex.ru"]
    cli("gateway", "edit", "support@yandex.ru", "--server", "mail.example.org")
    in_use = cli("server", "remove", "mail.example.org", ok=False)
    assert in_use.code == 2 and 'unknown server "mail.example.org"' in in_use.err
    preset = cli("server", "remove", "gmail.com", ok=False)
    assert "preset" in preset.err
    cli("server", "edit", "gmail.com", "--smtp", "smtp.gmail.com:587", "--security", "starttls")
    gmail = {s["name"]: s for s in cli("server", "list", "--json").json()}["gmail.com"]
    assert gmail["smtp"] == "smtp.gmail.com:587" and gmail["imap"] == "imap.gmail.com:993" and not gmail["preset"]
    cli("gateway", "remove", "support@yandex.ru")
    assert cli("gateway", "list", "--json").json() == []


def test_rules_add_move_edit_remove(cli: Cli) -> None:
    cli("user", "add", "petrov")
    cli("project", "add", "Sales")
    cli("task", "add", "Sales", "Invoices")
    cli("mailbox", "add", "sales")
    cli("rule", "add", "invoices", "--mailbox", "sales", "--subject", "счёт, invoice", "--senders",
        "@client.ru, buh@", "--task", "Sales/Invoices", "--assign-to", "petrov", "--stop")
    cli("rule", "add", "spam", "--ignore", "--subject", "viagra")
    cli("rule", "add", "first", "--ignore", "--senders", "noreply@", "--position", "1")
    rules = cli("rule", "list", "--json").json()
    assert [r["name"] for r in rules] == ["first", "invoices", "spam"]
    invoices = rules[1]
    assert invoices == {
        "position": 2, "name": "invoices", "scope": "mailbox", "gateway": None, "mailbox": "sales",
        "subject": ["счёт", "invoice"], "senders": ["@client.ru", "buh@"], "recipients": [],
        "action": "comment", "task": "Sales/Invoices", "project": None, "assign_to": "petrov", "delete_after": False,
        "stop": True, "editable_by_owner": False,
    }
    cli("rule", "move", "spam", "1")
    assert [r["name"] for r in cli("rule", "list", "--json").json()] == ["spam", "first", "invoices"]
    cli("rule", "edit", "invoices", "--no-stop", "--global", "--rename", "bills")
    bills = cli("rule", "list", "--json").json()[2]
    assert bills["name"] == "bills" and bills["scope"] == "global" and not bills["stop"]
    bad_task = cli("rule", "add", "x", "--task", "Sales/Nope", ok=False)
    assert bad_task.err.strip() == 'prostoy-mail: no task "Sales/Nope"'
    out_of_range = cli("rule", "move", "spam", "9", ok=False)
    assert "position must be from 1 to 3" in out_of_range.err
    cli("rule", "remove", "first")
    assert [r["name"] for r in cli("rule", "list", "--json").json()] == ["spam", "bills"]


def test_a_rule_that_opens_tasks(cli: Cli, tmp_path: Path) -> None:
    cli("user", "add", "petrov")
    cli("project", "add", "Support")
    cli("mailbox", "add", "help")
    unknown = cli("rule", "add", "orders", "--new-task", "Nope", ok=False)
    assert unknown.err.strip() == 'prostoy-mail: no project "Nope" (add it: prostoy-mail project add "Nope")'
    cli("rule", "add", "orders", "--mailbox", "help", "--subject", "заказ", "--new-task", "Support",
        "--assign-to", "petrov")
    [rule] = cli("rule", "list", "--json").json()
    assert (rule["action"], rule["project"], rule["task"], rule["assign_to"]) == ("new_task", "Support", None, "petrov")
    assert "new task in Support" in cli("rule", "list").out
    assert 'action = "new_task"\nproject = "Support"' in cli.config.read_text()

    eml = tmp_path / "order.eml"
    eml.write_bytes("From: client@far.example\r\nTo: help@prostoy.biz\r\nSubject: Re: Мой заказ № 5\r\n\r\nГде?\r\n"
                    .encode())
    explained = cli("rule", "explain", str(eml), "--mailbox", "help")
    assert ("Opens:    would open a new task in Support titled «Мой заказ № 5» by rule orders, assigned to petrov"
            in explained.out), explained.out
    data = cli("rule", "explain", str(eml), "--mailbox", "help", "--json").json()
    assert data["opens"] == [{"rule": "orders", "project": "Support", "title": "Мой заказ № 5", "assign_to": "petrov"}]
    assert data["lands_in"] == []

    cli("task", "add", "Support", "General")
    cli("rule", "edit", "orders", "--task", "Support/General")
    [rule] = cli("rule", "list", "--json").json()
    assert (rule["action"], rule["project"], rule["task"]) == ("comment", None, "Support/General")

    with cli.config.open("a") as f:
        f.write('\n[routing]\nnew_tasks_per_sender_per_hour = 0\n\n[[rules]]\nname = "bad"\naction = "new_task"\n'
                '\n[[rules]]\nname = "worse"\naction = "new_task"\nproject = "Gone"\ntask = "Support/General"\n')
    result = cli("check", ok=False)
    assert result.err.splitlines() == [
        f"{cli.config}: routing.new_tasks_per_sender_per_hour: must be at least 1, not 0",
        f'{cli.config}: rules[2].project: is required when action = "new_task" (the project its tasks are '
        'opened in)',
        f'{cli.config}: rules[3].task: has no meaning when action = "new_task"',
    ], result.err


def test_check_reports_broken_references_with_file_and_key(cli: Cli) -> None:
    with cli.config.open("a") as f:
        f.write('\n[[mailboxes]]\nlogin = "ivan"\nowner = "ivanov"\n\n'
                '[[rules]]\nname = "r"\naction = "comment"\ntask = "Sales/Invoices"\nassign_to = "petrov"\n'
                '[[rules]]\nname = "n"\naction = "new_task"\nproject = "Gone"\n')
    result = cli("check", ok=False)
    assert result.code == 2
    assert result.err.splitlines() == [
        f'{cli.config}: mailboxes[1].owner: no user "ivanov" (add it: prostoy-mail user add ivanov)',
        f'{cli.config}: rules[1].assign_to: no user "petrov" (add it: prostoy-mail user add petrov)',
        f'{cli.config}: rules[1].task: no task "Sales/Invoices"',
        f'{cli.config}: rules[2].project: no project "Gone" (add it: prostoy-mail project add "Gone")',
    ]


def test_passwords_in_a_readable_config_are_warned_about(cli: Cli) -> None:
    with cli.config.open("a") as f:
        f.write('\n[[gateways]]\nemail = "a@mail.ru"\nserver = "mail.ru"\npassword = "inline"\n')
    os.chmod(cli.config, 0o644)
    warned = cli("check")
    assert "holds passwords (gateways[1]) but is readable by group/others" in warned.err
    os.chmod(cli.config, 0o600)
    assert "readable" not in cli("check").err


def test_an_unknown_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = Cli(tmp_path / "missing.toml")("check", ok=False)
    assert result.code == 2 and "missing.toml: no such file" in result.err


def test_check_warns_about_certificates_secrets_and_mail_nothing_can_carry(cli: Cli) -> None:
    import datetime

    import trustme

    folder = cli.config.parent
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    cert = trustme.CA().issue_cert("mx.example.test", not_after=soon)
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    (folder / "key.pem").chmod(0o644)
    with cli.config.open("a") as f:
        f.write('\n[tls]\ncert = "cert.pem"\nkey = "key.pem"\n')
    cli("mailbox", "add", "sales")
    warnings = cli("check").err
    assert f"tls.cert: {folder / 'cert.pem'} expires on {soon:%Y-%m-%d} (in 2 days): renew it" in warnings, warnings
    assert f"tls.key: {folder / 'key.pem'} is readable by others (mode 644)" in warnings
    assert "relay: not set, so the domain's mailboxes (sales) cannot send mail outside" in warnings
    expired = trustme.CA().issue_cert("mx.example.test", not_after=soon - datetime.timedelta(days=30),
                                      not_before=soon - datetime.timedelta(days=60))
    expired.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    assert "expired on" in cli("check").err
    assert "expired on" not in cli("task", "list").err  # (every command warns of secrets, not of these)


def test_absurd_limits_are_refused_with_file_and_key(cli: Cli) -> None:
    with cli.config.open("a") as f:
        f.write("\n[smtp]\nmax_message_size = 1000000000000000\n")
    result = cli("check", ok=False)
    assert result.code == 2
    assert "smtp.max_message_size: must be at most 1073741824, not 1000000000000000" in result.err, result.err
