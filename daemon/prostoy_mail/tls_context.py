"""The server side of TLS for our listeners (SMTP submission, IMAP): the [tls] certificate and key."""

from __future__ import annotations

import ssl

from .config.model import Tls
from .errors import ProstoyMailError


def server_context(tls: Tls) -> ssl.SSLContext:
    """An SSLContext serving [tls] cert and key (TLS 1.2 at least); a clear error when they cannot be loaded."""
    if tls.cert is None or tls.key is None:
        raise ProstoyMailError("tls: cert and key are needed for the submission and IMAP listeners")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except FileNotFoundError as exc:
        raise ProstoyMailError(f"tls: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise ProstoyMailError(f"tls: cannot load {tls.cert} / {tls.key}: {exc}") from None
    return context
