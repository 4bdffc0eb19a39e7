"""Canary: the library internals our code reaches into are there and unchanged.

This is the one list of them. `imapd/server.py` subclasses Twisted's IMAP4Server and
overrides or calls private and name-mangled methods; `smtp/server.py` subclasses aiosmtpd's
SMTP and replaces parts of its __init__ and command loop; `api/server.py` runs uvicorn's
Server in the three steps its serve() is made of, setting `lifespan` as _serve() does. A new release may rename or
rewrite any of them without notice, so each is named here with a hash of its source as
reviewed. When this test fails after an upgrade: read the changed source against our
override, adapt our code, then update the hash (and the pins in pyproject.toml).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
from typing import Any

import aiosmtpd.smtp
import pytest
from twisted.mail import imap4

TWISTED = {  # in twisted.mail.imap4, reviewed on Twisted 26.10.0
    "IMAP4Server.__init__": "572fc2ea6c39d033",
    "IMAP4Server.connectionMade": "636f5d48b73cb678",
    "IMAP4Server.connectionLost": "356b42e2eb9febd8",
    "IMAP4Server.lineReceived": "fa004ec255fc08a7",
    "IMAP4Server.lineLengthExceeded": "0cb67c8ef953bcb8",
    "IMAP4Server._stringLiteral": "a3002cf1c9910095",
    "IMAP4Server._fileLiteral": "05620864e4e36081",
    "IMAP4Server.sendContinuationRequest": "e34efa1b1c602e26",
    "IMAP4Server.do_STARTTLS": "23a1286e67109a1e",
    "IMAP4Server.authenticateLogin": "b2f56763da378ef1",
    "IMAP4Server._unblock": "90da3679ba20a51c",
    "IMAP4Server._cbAppendGotMailbox": "fda8ffe0c14e99fe",
    "IMAP4Server._cbCopySelectedMailbox": "5702e904372d5aff",
    "IMAP4Server._IMAP4Server__ebAppend": "738fac1d89245fe7",
    "IMAP4Server._cbSelectWork": "ac7dc53be6f09cb9",
    "IMAP4Server._selectWork": "4f085750d8003a8c",
    "IMAP4Server.arg_astring": "3a006d585a1e0a57",
    "IMAP4Server.sendBadResponse": "89db7af846877915",
    "IMAP4Server.sendUntaggedResponse": "5bfbfe8e3558bfcc",
    "IMAP4Server._IMAP4Server__ebDispatch": "aa91b70d554ff629",
    "IMAP4Server._IMAP4Server__ebStatus": "7381bd5f615cbb7a",
    "IMAP4Server._cbStatusGotMailbox": "4fc833964dea970e",
    "IMAP4Server.arg_literal": "c0dcc2d4a3c73445",
    "IMAP4Server.spew_body": "068a3e6f20688e46",
    "IMAP4Server._listWork": "dd6a23580e970ea4",
    "IMAP4Server._cbListWork": "ac8f97e82b3078a9",
    "_literal": "0cfb1663300e8db8",
    "_formatHeaders": "1e489ad1271a7f92",
    "statusRequestHelper": "80a730ddce324287",
    "parseIdList": "61ccbcc409e328cc",
}

AIOSMTPD = {  # in aiosmtpd.smtp, reviewed on aiosmtpd 1.4.6
    "SMTP.__init__": "8a9ca80f23ad9bf2",
    "SMTP.connection_made": "77a45df5065bba34",
    "SMTP.connection_lost": "d3bf6349bc3c25c1",
    "SMTP._handle_client": "0e4d096403af6c74",
    "SMTP._getaddr": "0aeb21c56ac1260e",
    "SMTP._reset_timeout": "fef19b94d28dff31",
    "SMTP._timeout_cb": "10a7351f9bec2818",
    "SMTP.push": "15f4f1de5e30c337",
    "SMTP._call_handler_hook": "6ff23a6634ea0307",
    "SMTP._set_post_data_state": "1dc8a8abca2a8164",
    "SMTP.handle_exception": "33be80d97d2d75ee",
    "SMTP._create_envelope": "54afceea638744d4",
    "Envelope": "a678e06f91b2853d",
    "SMTP.smtp_STARTTLS": "6565289f4131fa13",
    "SMTP._getparams": "ca3dd15943d34dcc",
    "SMTP.smtp_DATA": "3a33f30d3fd6d02f",
    "SMTP._authenticate": "4252dad9a1780535",
    "login_always_fail": "299433326de97c37",
    "_AuthMechAttr": "f0918a59ff9135dd",
}


UVICORN = {  # in uvicorn.server, reviewed on uvicorn 0.55.0
    "Server._serve": "4575b7a50adfede8",  # (what api/server.py does instead: lifespan, startup, main_loop, shutdown)
    "Server.startup": "2aa1d70a244bfcf2",
    "Server.main_loop": "afccb353a119333f",
    "Server.shutdown": "5d01b8b1f116a786",
}


def _source_hash(module: Any, dotted: str) -> str:
    found = module
    for part in dotted.split("."):
        found = getattr(found, part, None)
        assert found is not None, f"{module.__name__}.{dotted} is gone"
    return hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(TWISTED))
def test_twisted_internals_are_unchanged(name: str) -> None:
    assert _source_hash(imap4, name) == TWISTED[name], f"twisted.mail.imap4.{name} changed: review imapd/server.py"


@pytest.mark.parametrize("name", sorted(AIOSMTPD))
def test_aiosmtpd_internals_are_unchanged(name: str) -> None:
    assert _source_hash(aiosmtpd.smtp, name) == AIOSMTPD[name], f"aiosmtpd.smtp.{name} changed: review smtp/server.py"


@pytest.mark.parametrize("name", sorted(UVICORN))
def test_uvicorn_internals_are_unchanged(name: str) -> None:
    import uvicorn.server

    assert _source_hash(uvicorn.server, name) == UVICORN[name], f"uvicorn.server.{name} changed: review api/server.py"


def test_the_installed_versions_are_the_reviewed_ones() -> None:
    assert importlib.metadata.version("aiosmtpd") == "1.4.6"
    assert importlib.metadata.version("uvicorn") == "0.55.0"
    assert importlib.metadata.version("twisted").split(".")[0] == "26"


# The standard library's, overridden by fetch/imap.py and fetch/pop3.py to bound what an
# external server sends (they change only with Python): checked by name and parameters.
STDLIB = {
    "imaplib.IMAP4.send": ["self", "data"],
    "imaplib.IMAP4.read": ["self", "size"],
    "imaplib.IMAP4.readline": ["self"],
    "imaplib.IMAP4._new_tag": ["self"],
    "poplib.POP3._putcmd": ["self", "line"],
    "poplib.POP3._getline": ["self"],
}


@pytest.mark.parametrize("name", sorted(STDLIB))
def test_stdlib_internals_keep_their_parameters(name: str) -> None:
    import imaplib
    import poplib

    module, cls, method = name.split(".")
    found = getattr(getattr({"imaplib": imaplib, "poplib": poplib}[module], cls), method, None)
    assert found is not None, f"{name} is gone: review fetch/"
    assert list(inspect.signature(found).parameters) == STDLIB[name], f"{name} changed: review fetch/"
    assert isinstance(poplib._MAXLINE, int)  # type: ignore[attr-defined]  # (raised by fetch/pop3.py)
