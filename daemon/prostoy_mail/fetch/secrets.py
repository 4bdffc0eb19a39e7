"""A gateway's password: given in the configuration, or read from its file (e.g. a systemd credential)."""

from __future__ import annotations

from ..config.model import Gateway
from .imap import FetchError


def gateway_password(gateway: Gateway) -> str:
    if gateway.password is not None:
        return gateway.password
    if gateway.password_file is None:
        raise FetchError("password", "no password or password_file")
    try:
        return gateway.password_file.read_text("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise FetchError("password", f"{gateway.password_file}: {exc.strerror}") from None


def smtp_credentials(gateway: Gateway) -> tuple[str, str]:
    """The login and password for SMTP: the gateway's own unless it has separate ones."""
    if gateway.smtp_login is None:
        return gateway.login, gateway_password(gateway)
    if gateway.smtp_password is not None:
        return gateway.smtp_login, gateway.smtp_password
    if gateway.smtp_password_file is None:
        raise FetchError("password", "no smtp_password or smtp_password_file")
    try:
        return gateway.smtp_login, gateway.smtp_password_file.read_text("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise FetchError("password", f"{gateway.smtp_password_file}: {exc.strerror}") from None
