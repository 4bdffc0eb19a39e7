"""Hosting many organisations, through the command line: `org`, `domain` and `--org`; each
organisation's users, projects and tasks its own; bad input is one line and exit status 2."""

from __future__ import annotations

from tests.conftest import Cli


def test_organisations_side_by_side(cli: Cli) -> None:
    cli("user", "add", "ivanov", "--owner")
    cli("project", "add", "Sales")
    cli("task", "add", "Sales", "Invoices")
    added = cli("org", "add", "acme", "--name", "Acme Ltd", "--owner", "boss@acme.example", "--owner-name", "Boss")
    assert added.out == "organisation acme added, owned by boss@acme.example\n"
    # the same project and task names in the other organisation: its own
    cli("--org", "acme", "project", "add", "Sales")
    cli("--org", "acme", "task", "add", "Sales", "Invoices")
    acme_tasks = cli("--org", "acme", "task", "list", "--json").json()
    main_tasks = cli("task", "list", "--json").json()
    assert {t["title"] for t in acme_tasks} == {"Invoices", "Boss"}
    assert not {t["id"] for t in acme_tasks} & {t["id"] for t in main_tasks}
    assert [u["login"] for u in cli("--org", "acme", "user", "list", "--json").json()] == ["boss@acme.example"]
    assert [u["login"] for u in cli("user", "list", "--json").json()] == ["ivanov"]
    # nothing of one is reachable from the other, not even by id
    acme_invoices = next(t["id"] for t in acme_tasks if t["title"] == "Invoices")
    foreign = cli("task", "show", str(acme_invoices), ok=False)
    assert (foreign.code, foreign.err) == (1, f"prostoy-mail: no task {acme_invoices}\n")
    assert cli("--org", "acme", "user", "passwd", "ivanov", "--password-file", "-", input="x\n", ok=False).code == 1

    listed = {o["slug"]: o for o in cli("org", "list", "--json").json()}
    assert listed["acme"] == {"slug": "acme", "name": "Acme Ltd", "owner": "boss@acme.example", "file_managed": False,
                              "domains": [], "users": 1, "mailboxes": 0, "gateways": 0, "rules": 0, "projects": 2,
                              "tasks": 2}
    assert (listed["main"]["file_managed"], listed["main"]["owner"], listed["main"]["users"]) == (True, "ivanov", 1)

    cli("--org", "acme", "domain", "add", "Acme.Example")
    assert cli("domain", "list", "--json").json() == [{"domain": "acme.example", "org": "acme"}]
    assert cli("org", "show", "acme", "--json").json()["domains"] == ["acme.example"]

    # mailboxes and rules: acme's own, kept in the store
    added = cli("--org", "acme", "mailbox", "add", "support")
    assert added.out.startswith("mailbox support@example.test added; its task is ")
    assert [m["login"] for m in cli("--org", "acme", "mailbox", "list", "--json").json()] == ["support"]
    assert "support" not in [m["login"] for m in cli("mailbox", "list", "--json").json()]
    taken = cli("mailbox", "add", "support", ok=False)  # the file's organisation cannot take acme's login
    assert taken.code == 2 and "mailboxes[1].login: support@example.test belongs to another organisation" \
        in taken.err, taken
    cli("--org", "acme", "rule", "add", "invoices", "--subject", "invoice", "--task", "Sales/Invoices")
    assert [r["name"] for r in cli("--org", "acme", "rule", "list", "--json").json()] == ["invoices"]
    assert cli("rule", "list", "--json").json() == []
    # acme's tasks send as acme's addresses only
    body = cli.config.parent / "body.txt"
    body.write_text("hello\n", "utf-8")
    send = ("--org", "acme", "task", "send", "Sales/Invoices", "--to", "x@far.example", "--subject", "s",
            "--body-file", str(body))
    assert cli(*send, "--from", "support@example.test").out.startswith("queued as ")
    foreign = cli(*send, "--from", "sales@example.test", ok=False)
    assert foreign.code == 1 and "--from sales@example.test: not a domain mailbox or gateway here" in foreign.err
    # servers and gateways: acme's own, kept in the store, the password itself (never a path
    # to the daemon's files: a customer must not make the daemon read them)
    cli("--org", "acme", "server", "add", "mail.acme.example", "--imap", "imap.acme.example:993",
        "--smtp", "smtp.acme.example:465", "--security", "ssl")
    assert "mail.acme.example" not in [s["name"] for s in cli("server", "list", "--json").json()]
    password = cli.config.parent / "acme-password"
    password.write_text("s3cret\n", "utf-8")
    added = cli("--org", "acme", "gateway", "add", "info@acme.example", "--server", "mail.acme.example",
                "--password-file", str(password))
    assert added.out.startswith("gateway info@acme.example added; its task is ")
    [gateway] = cli("--org", "acme", "gateway", "list", "--json").json()
    assert (gateway["email"], gateway["server"], gateway["password_from"]) == ("info@acme.example",
                                                                              "mail.acme.example", "config")
    assert cli("gateway", "list", "--json").json() == []
    assert "s3cret" not in cli("--org", "acme", "gateway", "list", "--json").out  # (write-only)
    taken = cli("gateway", "add", "info@acme.example", "--server", "mail.ru", "--password-file", str(password),
                ok=False)
    assert taken.code == 2 and "gateways[1].email: info@acme.example is connected by another organisation" \
        in taken.err, taken
    removed_in_use = cli("--org", "acme", "server", "remove", "mail.acme.example", ok=False)
    assert removed_in_use.code == 2 and "mail.acme.example" in removed_in_use.err

    assert cli("org", "remove", "acme", ok=False).err.endswith("add --yes\n")
    removed = cli("org", "remove", "acme", "--yes")
    assert removed.out.startswith("organisation acme removed: ")
    assert [o["slug"] for o in cli("org", "list", "--json").json()] == ["main"]
    assert cli("domain", "list", "--json").json() == []
    assert {t["title"] for t in cli("task", "list", "--json").json()} >= {"Invoices", "ivanov"}  # untouched
    cli("org", "add", "acme", "--name", "Acme again", "--owner", "boss@acme.example")  # the login is free again


def test_the_file_names_its_organisation(cli: Cli) -> None:
    with cli.config.open("a") as f:
        f.write('\n[organisation]\nslug = "hq"\nname = "Head office"\n')
    [hq] = cli("org", "list", "--json").json()
    assert (hq["slug"], hq["name"], hq["file_managed"]) == ("hq", "Head office", True)
    cli("org", "add", "beta", "--name", "Beta", "--owner", "b")
    text = cli.config.read_text()
    cli.config.write_text(text.replace('slug = "hq"', 'slug = "beta"'))
    collision = cli("org", "list", ok=False)
    assert (collision.code, collision.err) == (
        2, 'prostoy-mail: organisation.slug: "beta" is the slug of an organisation in the store; choose another '
           "for the one this file declares\n")


def test_bad_input_is_one_line_and_exit_status_2(cli: Cli) -> None:
    cli("user", "add", "ivanov")
    cli("org", "add", "acme", "--name", "Acme", "--owner", "boss")
    cases = {
        ("org", "add", "Not A Slug", "--name", "x", "--owner", "o"): '"Not A Slug" is not a slug',
        ("org", "add", "acme", "--name", "x", "--owner", "o2"): 'organisation "acme" already exists',
        ("org", "add", "beta", "--name", "x", "--owner", "ivanov"): 'the login "ivanov" is taken',
        ("--org", "nobody", "task", "list"): 'no organisation "nobody"',
        ("--org", "acme", "domain", "add", "not a domain"): '"not a domain" is not a mail domain',
        ("--org", "acme", "domain", "add", "example.test"): "example.test is the shared domain",
        ("domain", "add", "acme.example"): "say whose domain it is",
        ("--org", "acme", "user", "add", "ivanov"): 'the login "ivanov" is taken',
    }
    for args, message in cases.items():
        result = cli(*args, ok=False)
        assert result.code == 2 and message in result.err and result.err.count("\n") == 1, (args, result)
    cli("--org", "acme", "domain", "add", "acme.example")
    cli("org", "add", "beta", "--name", "Beta", "--owner", "b")
    stolen = cli("--org", "beta", "domain", "add", "ACME.example", ok=False)
    assert (stolen.code, stolen.err) == (2, "prostoy-mail: acme.example is a domain of another organisation\n")
    assert [o["slug"] for o in cli("org", "list", "--json").json()] == ["acme", "beta", "main"]  # nothing half-made


def test_limits_per_organisation(cli: Cli) -> None:
    with cli.config.open("a") as f:
        f.write("\n[limits]\nusers = 2\nmailboxes = 1\nrules = 1\n")
    cli("user", "add", "ivanov")
    cli("user", "add", "petrov")
    over = cli("user", "add", "sidorov", ok=False)
    assert (over.code, over.err) == (1, 'prostoy-mail: organisation "main" has 2 users, its limit (limits.users); '
                                        "raise it with: prostoy-mail org limits main --users N\n")
    limits = cli("org", "limits", "main", "--users", "3", "--json").json()
    assert limits["users"] == {"limit": 3, "own": True, "used": 2}
    assert limits["mailboxes"] == {"limit": 1, "own": False, "used": 0}
    cli("user", "add", "sidorov")
    cli("mailbox", "add", "sales")
    assert "has 1 mailboxes, its limit (limits.mailboxes)" in cli("mailbox", "add", "info", ok=False).err
    cli("project", "add", "P")
    cli("task", "add", "P", "T")
    cli("rule", "add", "one", "--subject", "x", "--task", "P/T")
    assert "its limit (limits.rules)" in cli("rule", "add", "two", "--subject", "y", "--task", "P/T", ok=False).err
    back = cli("org", "limits", "main", "--users", "default", "--json").json()
    assert back["users"] == {"limit": 2, "own": False, "used": 3}  # (over it now: nothing is taken away)
    bad = cli("org", "limits", "main", "--rules", "lots", ok=False)
    assert (bad.code, bad.err) == (2, 'prostoy-mail: --rules: "lots" is not a number (0 to 10000000) or "default"\n')
    # another organisation's limits are its own
    cli("org", "add", "acme", "--name", "Acme", "--owner", "boss")
    cli("--org", "acme", "user", "add", "clerk")
    assert "its limit (limits.users)" in cli("--org", "acme", "user", "add", "clerk2", ok=False).err
    cli("org", "limits", "acme", "--users", "10")
    cli("--org", "acme", "user", "add", "clerk2")
    assert cli("org", "limits", "main", "--json").json()["users"]["limit"] == 2
