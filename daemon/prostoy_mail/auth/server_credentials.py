"""Passwords for external servers: given in the configuration, or read from a file (a systemd credential)."""

from __future__ import annotations

from pathlib import Path

from ..config.model import Gateway, Relay
from ..errors import ProstoyMailError


class CredentialError(ProstoyMailError):
    """A password cannot be had: none configured, or its file cannot be read."""


def read_secret(value: str | None, file: Path | None, what: str) -> str:
    if value is not None:
        return value
    if file is None:
        raise CredentialError(f"no {what} or {what}_file")
    try:
        return file.read_text("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise CredentialError(f"{file}: {exc.strerror}") from None


def gateway_password(gateway: Gateway) -> str:
    return read_secret(gateway.password, gateway.password_file, "password")


def smtp_credentials(gateway: Gateway) -> tuple[str, str]:
    """The login and password for SMTP: the gateway's own unless it has separate ones."""
    if gateway.smtp_login is None:
        return gateway.login, gateway_password(gateway)
    return gateway.smtp_login, read_secret(gateway.smtp_password, gateway.smtp_password_file, "smtp_password")


def relay_credentials(relay: Relay) -> tuple[str, str] | None:
    if relay.login is None:
        return None
    return relay.login, read_secret(relay.password, relay.password_file, "password")
