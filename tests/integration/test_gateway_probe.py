"""`prostoy-mail gateway test`: against a real Dovecot for fetching and an aiosmtpd peer for SMTP."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.config_factory import config_text
from tests.conftest import console_script
from tests.dovecot import Dovecot

USERS = {"probe@example.org": "right"}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(USERS).start()
    yield server
    server.stop()


class Authenticator:
    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"probe@example.org",
                                                                                                  b"right")
        return AuthResult(success=ok, handled=False)


@pytest.fixture
async def smtp_peer(dovecot: Dovecot) -> AsyncIterator[int]:
    """An SMTP server with implicit TLS and AUTH, its certificate from Dovecot's test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    dovecot_ca = dovecot.ca
    dovecot_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(object(), hostname="smtp.test", authenticator=Authenticator(), auth_require_tls=False),
        "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()


def write_config(tmp_path: Path, dovecot: Dovecot, smtp_port: int, password: str, imap_port: str = "imap",
                 ca: bool = True) -> Path:
    config = tmp_path / "prostoy-mail.toml"
    server = {"name": "dovecot.test", "imap": f"127.0.0.1:{dovecot.ports[imap_port]}",
              "pop3": f"127.0.0.1:{dovecot.ports['pop3']}", "smtp": f"127.0.0.1:{smtp_port}", "ssl": False,
              "security": "ssl", **({"ca_file": str(dovecot.ca_file)} if ca else {})}
    config.write_text(config_text(listen={}, servers=[server],
                                  gateways=[{"email": "probe@example.org", "server": "dovecot.test",
                                             "password": password}]))
    return config


async def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [console_script(), "--config", str(config), "gateway", "test",
                                                    *args], capture_output=True, text=True, timeout=60)


async def test_all_steps_ok(tmp_path: Path, dovecot: Dovecot, smtp_peer: int) -> None:
    result = await run(write_config(tmp_path, dovecot, smtp_peer, "right"), "probe@example.org")
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:3] for line in lines[:-1]] == [
        ["imap", "dns", "OK"], ["imap", "connect", "OK"], ["imap", "tls", "OK"], ["imap", "login", "OK"],
        ["smtp", "dns", "OK"], ["smtp", "connect", "OK"], ["smtp", "tls", "OK"], ["smtp", "login", "OK"]]
    assert "STARTTLS" in lines[2] and "INBOX: 0 messages, IDLE yes" in lines[3]
    assert lines[-1] == "probe@example.org: all steps OK"


async def test_a_wrong_password_is_named_as_such(tmp_path: Path, dovecot: Dovecot, smtp_peer: int) -> None:
    result = await run(write_config(tmp_path, dovecot, smtp_peer, "wrong"), "probe@example.org")
    assert result.returncode == 1
    assert "imap  login     FAILED" in result.stdout and "smtp  login     FAILED 535" in result.stdout
    assert result.stdout.splitlines()[-1] == "probe@example.org: FAILED at imap login, smtp login"


async def test_an_untrusted_certificate_and_a_closed_port(tmp_path: Path, dovecot: Dovecot, smtp_peer: int) -> None:
    result = await run(write_config(tmp_path, dovecot, smtp_peer, "right", ca=False), "probe@example.org")
    assert "imap  tls       FAILED certificate not trusted" in result.stdout
    assert "smtp  tls       FAILED certificate not trusted" in result.stdout
    config = write_config(tmp_path, dovecot, 1, "right")
    closed = await run(config, "probe@example.org", "--no-smtp", "--protocol", "pop3")
    assert "pop3  login     OK" in closed.stdout and "smtp" not in closed.stdout
    refused = await run(config, "probe@example.org")
    assert "smtp  connect   FAILED 127.0.0.1:1:" in refused.stdout and refused.returncode == 1


async def test_settings_not_saved_yet(tmp_path: Path, dovecot: Dovecot, smtp_peer: int) -> None:
    config = write_config(tmp_path, dovecot, smtp_peer, "right")
    password = tmp_path / "pw"
    password.write_text("right\n")
    result = await run(config, "new@example.org", "--server", "dovecot.test", "--login", "probe@example.org",
                       "--password-file", str(password))
    assert result.returncode == 0, result.stdout
    unknown = await run(config, "nobody@example.org")
    assert unknown.returncode == 1 and "give --server and --password-file" in unknown.stderr
