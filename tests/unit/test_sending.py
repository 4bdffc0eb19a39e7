"""Send-as policy, header edits of submitted mail, DSN composition, login throttling (fake clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from prostoy_mail.auth.login_guard import LoginGuard, Outcome
from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import AuthSettings
from prostoy_mail.fetch.sent_folder import decode_folder_name
from prostoy_mail.mail.compose import FailedRecipient, delivery_status_notification, edit_header
from prostoy_mail.mail.parse import parse_message
from prostoy_mail.sending_policy import SendingPolicy
from tests.config_factory import config_text

CONFIG = config_text(
    listen={}, mailboxes=["sales", {"login": "ivan", "owner": "ivanov"}],
    gateways=[{"email": "Support@Yandex.ru", "server": "yandex.ru", "login": "support@yandex.ru", "password": "x"},
              {"email": "ivanov@mail.ru", "server": "mail.ru", "login": "ivanov@mail.ru", "password": "x",
               "personal_for": "ivanov"}])


def test_who_may_send_as_what() -> None:
    policy = SendingPolicy.of(parse_config(CONFIG, Path("/tmp/x.toml")))
    assert policy.addresses_for("ivanov", 1) == ["ivan@example.test", "ivanov@mail.ru", "sales@example.test",
                                               "support@yandex.ru"]
    assert policy.addresses_for("petrov", 1) == ["sales@example.test", "support@yandex.ru"]
    assert policy.may_send_as("petrov", "ivan@example.test", 1) is None
    assert policy.may_send_as("petrov", "SALES+t1.abc@Example.TEST", 1) is not None  # a tagged address is the mailbox
    sender = policy.may_send_as("ivanov", "ivanov@mail.ru", 1)
    assert sender is not None and sender.route == "gateway:ivanov@mail.ru" and sender.mailbox_login is None
    assert policy.may_send_as("ivanov", "ivan@example.test", 1).route == "relay"  # type: ignore[union-attr]
    assert policy.local_login("Ivan+x@example.test") == "ivan" and policy.local_login("nobody@example.test") is None
    assert policy.local_login("ivan@elsewhere.test") is None


def test_header_edits_keep_everything_else_byte_exact() -> None:
    raw = (b"From: a@b\r\nBcc: x@y,\r\n  z@w\r\nSubject: =?koi8-r?B?8NLJ18XU?=\r\nX-Raw: \xd0\xf0\r\n"
           b"\r\nbody\r\nBcc: not a header\r\n")
    edited = edit_header(raw, remove=["bcc"], add=[("Message-ID", "<1@x>")])
    assert edited == (b"Message-ID: <1@x>\r\nFrom: a@b\r\nSubject: =?koi8-r?B?8NLJ18XU?=\r\nX-Raw: \xd0\xf0\r\n"
                      b"\r\nbody\r\nBcc: not a header\r\n")


def test_a_dsn_is_a_bounce_that_replies_to_the_original() -> None:
    dsn = delivery_status_notification(
        reporting_host="mx.example.test", postmaster="MAILER-DAEMON@example.test", recipient="sales@example.test",
        original=b"From: sales@example.test\r\nSubject: hi\r\n\r\nbody\r\n", original_message_id="orig@x",
        failed=[FailedRecipient("r@far.example", "550 5.1.1 no such user", "mx.far.example")],
        message_id="dsn@mx.example.test")
    parsed = parse_message(dsn, "")
    assert parsed.bounce and parsed.in_reply_to == ("orig@x",)
    assert "<r@far.example>: 550 5.1.1 no such user" in parsed.text
    assert b"Status: 5.1.1\r\n" in dsn and b"Remote-MTA: dns; mx.far.example" in dsn
    assert dsn.count(b"\n") == dsn.count(b"\r\n")


def test_folder_names_in_modified_utf7() -> None:
    assert decode_folder_name("&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-") == "Отправленные"
    assert decode_folder_name("Sent &- Received") == "Sent & Received"


def test_failures_slow_then_block_one_address_only() -> None:
    now = [1000.0]
    hashes = {"ivanov": hash_password("right")}

    async def lookup(login: str) -> str | None:
        return hashes.get(login)

    settings = AuthSettings(delay_after=2, max_delay=0.01, max_failures=4, failure_window=60, block_time=30)

    async def scenario() -> list[Outcome]:
        guard = LoginGuard(lookup, lambda: settings, clock=lambda: now[0])
        outcomes = [await guard.check("10.0.0.1", "ivanov", "wrong") for _ in range(4)]
        outcomes.append(await guard.check("10.0.0.1", "ivanov", "right"))  # blocked: not even checked
        outcomes.append(await guard.check("10.0.0.2", "ivanov", "right"))  # another address: fine
        outcomes.append(await guard.check("10.0.0.2", "nobody", "right"))  # an unknown user: same failure
        now[0] += 31
        outcomes.append(await guard.check("10.0.0.1", "ivanov", "right"))  # the block is over
        return outcomes

    assert asyncio.run(scenario()) == [Outcome.FAILED, Outcome.FAILED, Outcome.FAILED, Outcome.BLOCKED,
                                       Outcome.BLOCKED, Outcome.OK, Outcome.FAILED, Outcome.OK]


def test_a_corporate_mailbox_with_users_is_theirs_alone() -> None:
    config = parse_config(CONFIG + '[[mailboxes]]\nlogin = "buh"\nusers = ["petrov"]\n'
                          '[[gateways]]\nemail = "buh@mail.ru"\nserver = "mail.ru"\nlogin = "b"\npassword = "x"\n'
                          'users = "petrov"\n', Path("/tmp/x.toml"))
    policy = SendingPolicy.of(config)
    assert policy.may_send_as("petrov", "buh@example.test", 1) is not None
    assert policy.may_send_as("sidorov", "buh@example.test", 1) is None
    assert policy.may_send_as("sidorov", "buh@mail.ru", 1) is None and policy.may_send_as("petrov", "buh@mail.ru", 1)
    assert policy.may_send_as("sidorov", "sales@example.test", 1) is not None  # no users list: everyone

    from prostoy_mail.imapd.folders import folders_for
    from prostoy_mail.store.ports import Task, User

    tasks = [Task(1, "Mail", "buh@example.test", None, "mailbox", "mailbox:buh"),
             Task(2, "Mail", "buh@mail.ru", None, "gateway", "gateway:buh@mail.ru"),
             Task(3, "Mail", "sales@example.test", None, "mailbox", "mailbox:sales")]

    def names(login: str, owner: bool = False) -> set[str]:
        return {f.name for f in folders_for(User(1, login, login, owner, True, None), config, tasks)}

    assert {"buh", "Tasks/Mail/buh@example.test", "Tasks/Mail/buh@mail.ru"} <= names("petrov")
    assert not {"buh", "Tasks/Mail/buh@example.test", "Tasks/Mail/buh@mail.ru"} & names("sidorov")
    assert {"sales", "Tasks/Mail/sales@example.test"} <= names("sidorov")
    assert {"buh", "Tasks/Mail/buh@example.test"} <= names("boss", owner=True)


def test_users_of_a_personal_mailbox_are_refused() -> None:
    import pytest

    from prostoy_mail.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        parse_config(CONFIG + '[[mailboxes]]\nlogin = "x"\nowner = "a"\nusers = ["b"]\n', Path("/tmp/x.toml"))
    assert "mailboxes[3].users: a personal mailbox" in str(refused.value.problems[0])


def test_a_password_verified_once_is_recognised_without_argon2_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from prostoy_mail.auth import login_guard
    from prostoy_mail.auth.login_guard import LoginGuard, Outcome
    from prostoy_mail.auth.password_hashes import hash_password, verify_password

    calls: list[str] = []

    def counting(stored: str | None, password: str) -> bool:
        calls.append(password)
        return verify_password(stored, password)

    monkeypatch.setattr(login_guard, "verify_password", counting)
    now = [1000.0]
    hashes = {"ivanov": hash_password("right")}
    settings = [AuthSettings(verified_cache_seconds=600)]

    async def lookup(login: str) -> str | None:
        return hashes.get(login)

    async def scenario() -> list[tuple[Outcome, int]]:
        guard = LoginGuard(lookup, lambda: settings[0], clock=lambda: now[0])
        seen = []

        async def check(password: str) -> None:
            outcome = await guard.check("10.0.0.1", "ivanov", password)
            seen.append((outcome, len(calls)))

        await check("right")  # verified: Argon2
        await check("right")  # recognised: no Argon2
        await check("wrong")  # a wrong guess always costs Argon2
        await check("right")  # still recognised
        hashes["ivanov"] = hash_password("new")  # the password changed: the old one is not recognised
        await check("right")
        await check("new")
        await check("new")
        now[0] += 601  # too long ago: verified again
        await check("new")
        settings[0] = AuthSettings(verified_cache_seconds=0)  # off: always verified
        await check("new")
        await check("new")
        return seen

    seen = asyncio.run(scenario())
    assert seen == [(Outcome.OK, 1), (Outcome.OK, 1), (Outcome.FAILED, 2), (Outcome.OK, 2), (Outcome.FAILED, 3),
                    (Outcome.OK, 4), (Outcome.OK, 4), (Outcome.OK, 5), (Outcome.OK, 6), (Outcome.OK, 7)]


def test_an_address_is_for_its_own_organisations_users_only() -> None:
    """A corporate mailbox with no `users` is every user's: every user of its organisation's."""
    main = SendingPolicy.of(parse_config(CONFIG, Path("/tmp/x.toml")), org=1)
    acme = SendingPolicy.of(parse_config('[daemon]\ndomain = "example.test"\n[[mailboxes]]\nlogin = "support"\n',
                                         Path("/tmp/y.toml")), org=2, relay=True)
    both = SendingPolicy.merged([main, acme])
    assert both.may_send_as("petrov", "sales@example.test", 1) is not None
    assert both.may_send_as("boss", "sales@example.test", 2) is None  # another organisation's corporate mailbox
    assert both.may_send_as("boss", "support@example.test", 2) is not None
    assert both.may_send_as("petrov", "support@example.test", 1) is None
    assert both.may_send_as("nobody", "support@example.test", None) is None  # (no such user)
    assert both.local_login("support@example.test") == "support" and both.local_login("sales@example.test")
    assert both.sender("support@example.test").no_route is None  # type: ignore[union-attr]  # (the file's relay)


def test_logins_of_one_password_at_the_same_moment_share_one_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconnect storm: 50 sessions of one user log in at once; one Argon2, not 50 queued.
    Concurrent wrong guesses share nothing with the right one, and each still counts."""
    import asyncio

    from prostoy_mail.auth import login_guard
    from prostoy_mail.auth.login_guard import LoginGuard, Outcome
    from prostoy_mail.auth.password_hashes import hash_password, verify_password

    calls: list[str] = []

    def counting(stored: str | None, password: str) -> bool:
        calls.append(password)
        return verify_password(stored, password)

    monkeypatch.setattr(login_guard, "verify_password", counting)
    stored = hash_password("right")

    async def lookup(login: str) -> str | None:
        return stored if login == "ivanov" else None

    async def storm() -> list[Outcome]:
        guard = LoginGuard(lookup, lambda: AuthSettings(verified_cache_seconds=600, max_failures=100))
        right = [guard.check(f"10.0.0.{n % 5}", "ivanov", "right") for n in range(50)]
        wrong = [guard.check("10.0.0.9", "ivanov", "wrong") for _ in range(3)]
        return list(await asyncio.gather(*right, *wrong))

    outcomes = asyncio.run(storm())
    assert outcomes == [Outcome.OK] * 50 + [Outcome.FAILED] * 3
    assert sorted(calls) == ["right", "wrong"]  # (one each: concurrent identical checks shared)
