"""A gateway's passwords for the fetchers: `credentials.py`, its errors as a FetchError of the step "password"."""

from __future__ import annotations

from ..config.model import Gateway
from ..credentials import CredentialError
from ..credentials import gateway_password as _gateway_password
from ..credentials import smtp_credentials as _smtp_credentials
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
