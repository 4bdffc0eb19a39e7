"""A gateway's passwords for the fetchers: `auth/server_credentials.py`, its errors as a FetchError
of the step "password"."""

from __future__ import annotations

from ..auth.server_credentials import CredentialError
from ..auth.server_credentials import gateway_password as _gateway_password
from ..auth.server_credentials import smtp_credentials as _smtp_credentials
from ..config.model import Gateway
from .errors import FetchError


def gateway_password(gateway: Gateway) -> str:
    try:
        return _gateway_password(gateway)
    except CredentialError as exc:
        raise FetchError("password", str(exc)) from None


def smtp_credentials(gateway: Gateway) -> tuple[str, str]:
    try:
        return _smtp_credentials(gateway)
    except CredentialError as exc:
        raise FetchError("password", str(exc)) from None
