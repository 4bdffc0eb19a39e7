"""Loading the configuration: every problem names file, key and what is wrong; all at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prostoy_mail.config.load import load_config, parse_config
from prostoy_mail.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, Path("/etc/prostoy-mail/prostoy-mail.toml"), "prostoy-mail.toml")
    return [str(p) for p in err.value.problems]


def test_example_configuration_loads() -> None:
    config = load_config(REPO / "config" / "prostoy-mail.example.toml")
    assert config.daemon.domain == "prostoy.biz"
    assert [m.login for m in config.mailboxes] == ["sales", "info"]
    assert config.listen.smtp is not None and config.listen.smtp.port == 2525
    assert config.store_location() == str((REPO / "var" / "store.db").resolve())
    assert config.rules[0].subject == ("viagra", "casino")


def test_presets_have_real_hosts_and_ports() -> None:
    config = parse_config("", Path("/x/p.toml"))
    by_name = {s.name: s for s in config.servers}
    assert set(by_name) == {"mail.ru", "yandex.ru", "rambler.ru", "gmail.com"}
    assert str(by_name["yandex.ru"].imap) == "imap.yandex.ru:993"
    assert str(by_name["mail.ru"].pop3) == "pop.mail.ru:995"
    assert str(by_name["gmail.com"].smtp) == "smtp.gmail.com:465"
    assert by_name["gmail.com"].files_sent_mail and not by_name["yandex.ru"].files_sent_mail
    assert all(s.preset and s.ssl and s.security == "ssl" for s in by_name.values())


def test_a_file_entry_replaces_a_preset() -> None:
    config = parse_config('[[servers]]\nname = "yandex.ru"\nimap = "imap.yandex.com:993"\n', Path("/x/p.toml"))
    yandex = [s for s in config.servers if s.name == "yandex.ru"]
    assert len(yandex) == 1 and str(yandex[0].imap) == "imap.yandex.com:993" and not yandex[0].preset


def test_unknown_server_names_the_known_ones() -> None:
    text = """
[[gateways]]
email = "a@mail.ru"
server = "mail.ru"
password = "x"

[[gateways]]
email = "support@yandex.ru"
server = "yandx.ru"
password = "x"
"""
    assert problems(text) == [
        'prostoy-mail.toml: gateways[2].server: unknown server "yandx.ru" '
        "(known: mail.ru, yandex.ru, rambler.ru, gmail.com)"
    ]


def test_all_problems_are_reported_at_once() -> None:
    text = """
[daemon]
domain = "not a domain"
colour = "blue"

[listen]
smtp = "127.0.0.1"
imap = "127.0.0.1:2143"

[smtp]
max_recipients = true

[[mailboxes]]
login = "Sales Team"

[[mailboxes]]
login = "info"

[[mailboxes]]
login = "info"

[[gateways]]
email = "x@y.ru"
server = "mail.ru"
keep_on_server = "yes"

[[rules]]
name = "a"
gateway = "x@y.ru"
mailbox = "info"
action = "comment"

[[rules]]
name = "b"
action = "ignore"
task = "Sales/Invoices"

[[rules]]
name = "c"
action = "forward"
task = 12
"""
    assert problems(text) == [
        'prostoy-mail.toml: daemon.domain: "not a domain" is not a domain name',
        "prostoy-mail.toml: daemon.colour: unknown key",
        'prostoy-mail.toml: listen.smtp: must be "host:port" with a port from 0 to 65535, not "127.0.0.1"',
        "prostoy-mail.toml: smtp.max_recipients: must be a whole number, not true/false",
        "prostoy-mail.toml: mailboxes[1].login: \"Sales Team\" is not a valid mailbox login "
        "(lower-case letters, digits, '.', '_', '-'; or login@own-domain)",
        'prostoy-mail.toml: mailboxes[3].login: mailbox "info" is defined twice',
        "prostoy-mail.toml: gateways[1].keep_on_server: must be true or false, not a string",
        "prostoy-mail.toml: gateways[1].password: give password or password_file",
        "prostoy-mail.toml: rules[1].mailbox: a rule belongs to a gateway or a mailbox, not both",
        'prostoy-mail.toml: rules[1].task: is required when action = "comment"',
        'prostoy-mail.toml: rules[2].task: has no meaning when action = "ignore"',
        'prostoy-mail.toml: rules[3].action: must be one of comment, new_task, ignore, not "forward"',
        "prostoy-mail.toml: tls: listen.imap need [tls] cert and key",
    ]


def test_broken_toml_names_the_line() -> None:
    [problem] = problems('[daemon]\ndomain = "x.ru\n')
    assert problem.startswith("prostoy-mail.toml: not valid TOML: ") and "line 2" in problem


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "no such file" in str(err.value) and "prostoy-mail init" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[gateways]]\nemail = "a@b.ru"\nserver = "mail.ru"\npassword = "x"\npassword_file = "/p"\n',
         "gateways[1].password: give either password or password_file, not both"),
        ('[[gateways]]\nemail = "a@b.ru"\nserver = "mail.ru"\npassword = "x"\nsmtp_login = "other"\n',
         "gateways[1].smtp_login: a separate SMTP login needs smtp_password or smtp_password_file"),
        ('[[servers]]\nname = "pop.only"\npop3 = "pop.only:995"\n[[gateways]]\nemail = "a@b.ru"\n'
         'server = "pop.only"\npassword = "x"\n',
         'gateways[1].protocol: server "pop.only" has no imap endpoint'),
        ('[[rules]]\nname = "r"\nmailbox = "nobody"\naction = "ignore"\n',
         'rules[1].mailbox: unknown mailbox "nobody"'),
        ('[[servers]]\nname = "s"\nimap = { host = "h" }\n', "servers[1].imap.port: is required"),
        ('[[servers]]\nname = "s"\n', 'servers[1].name: server "s" needs at least one of imap, pop3, smtp'),
        ('[listen]\nsmtp = "127.0.0.1:25"\nsubmission = "127.0.0.1:25"\n[tls]\ncert = "c"\nkey = "k"\n',
         "listen.submission: 127.0.0.1:25 is already used by listen.smtp"),
        ('[[gateways]]\nemail = "a@b.ru"\nserver = "mail.ru"\npassword = "x"\nimport_since = "yesterday"\n',
         "gateways[1].import_since: must be a date like 2026-01-31, not 'yesterday'"),
        ('rules = "x"\n', "rules: must be an array of tables ([[rules]]), not a string"),
        ("[smtp]\nworkers = 65\n", "smtp.workers: must be at most 64, not 65"),
        ("[smtp]\nworkers = -1\n", "smtp.workers: must be at least 0, not -1"),
    ],
)
def test_each_problem_names_its_key(text: str, expected: str) -> None:
    assert f"prostoy-mail.toml: {expected}" in problems(text)


def test_smtp_workers_default_to_one_per_cpu_and_none_on_one() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert parse_config("", Path("/x/p.toml")).smtp.workers == (min(cpus, 8) if cpus > 1 else 0)
    assert parse_config("[smtp]\nworkers = 0\n", Path("/x/p.toml")).smtp.workers == 0


def test_rule_lists_accept_commas_and_arrays() -> None:
    config = parse_config(
        '[[rules]]\nname = "r"\nsubject = " счёт ,invoice,, "\nsenders = ["@client.ru", "buh@"]\n'
        'action = "comment"\ntask = 7\n', Path("/x/p.toml"))
    rule = config.rules[0]
    assert rule.subject == ("счёт", "invoice") and rule.senders == ("@client.ru", "buh@") and rule.task == "7"
    assert rule.is_global


def test_relative_paths_are_relative_to_the_file() -> None:
    config = parse_config('[daemon]\nstore = "data/s.db"\n[tls]\ncert = "tls/c.pem"\nkey = "/k.pem"\n',
                          Path("/etc/pm/p.toml"))
    assert config.store_location() == "/etc/pm/data/s.db"
    assert str(config.tls.cert) == "/etc/pm/tls/c.pem" and str(config.tls.key) == "/k.pem"


def test_a_mailbox_on_an_own_domain_is_its_whole_address(tmp_path: Path) -> None:
    from tests.config_factory import config_text

    config = parse_config(config_text(mailboxes=["sales", "sales@acme.example"]), tmp_path / "pm.toml")
    assert [m.address("example.test") for m in config.mailboxes] == ["sales@example.test", "sales@acme.example"]
    with pytest.raises(ConfigError) as refused:
        parse_config(config_text(mailboxes=["info@example.test", "Info@Acme.example", "a b@acme.example"]),
                     tmp_path / "pm.toml")
    assert [str(p) for p in refused.value.problems] == [
        'pm.toml: mailboxes[1].login: "info@example.test" is on the shared domain: write the login alone ("info")',
        'pm.toml: mailboxes[2].login: "Info@Acme.example" is not a valid mailbox address on an own domain '
        "(login@domain, in lower case: letters, digits, '.', '_', '-')",
        'pm.toml: mailboxes[3].login: "a b@acme.example" is not a valid mailbox address on an own domain '
        "(login@domain, in lower case: letters, digits, '.', '_', '-')"]


def test_the_api_listener_is_plain_on_loopback_only(tmp_path: Path) -> None:
    from tests.config_factory import config_text

    plain = parse_config(config_text(listen={"http": "127.0.0.1:8080"}), tmp_path / "pm.toml")
    assert plain.listen.http is not None and plain.listen.http.port == 8080
    with pytest.raises(ConfigError) as refused:
        parse_config(config_text(listen={"http": "0.0.0.0:8080"}), tmp_path / "pm.toml")
    assert [str(p) for p in refused.value.problems] == ["pm.toml: tls: listen.http need [tls] cert and key"]


def test_a_rule_read_before_is_checked_against_the_settings_of_now() -> None:
    """Rules are kept read by their entry (load._READ_RULES): what depends on the rest of the
    settings (its mailbox, a second rule of its name) is checked every time, and a rule with a
    problem is never kept."""
    base = '[daemon]\ndomain = "example.test"\n'
    rule = '[[rules]]\nname = "r"\nmailbox = "sales"\nsubject = ["x"]\naction = "ignore"\n'
    with_mailbox = parse_config(base + '[[mailboxes]]\nlogin = "sales"\n' + rule, Path("/tmp/pm.toml"))
    assert with_mailbox.rules[0].mailbox == "sales"
    assert problems(base + rule) == ['prostoy-mail.toml: rules[1].mailbox: unknown mailbox "sales"']
    assert problems(base + '[[mailboxes]]\nlogin = "sales"\n' + rule + rule) == [
        'prostoy-mail.toml: rules[2].name: rule "r" is defined twice']
    bad = '[[rules]]\nname = "b"\nsubject = ["x"]\naction = "ignore"\ntask = "Sales/Invoices"\n'
    for _ in range(2):
        assert problems(base + bad) == ['prostoy-mail.toml: rules[1].task: has no meaning when action = "ignore"']
