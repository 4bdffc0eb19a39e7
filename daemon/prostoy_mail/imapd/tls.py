"""The [tls] certificate and key as Twisted's TLS context (STARTTLS and IMAPS).

A pyOpenSSL context loaded straight from the files (the whole chain, TLS 1.2 at least);
Twisted accepts any object with `getContext()` for `startTLS` and `listenSSL`.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from ..config.model import Tls
from ..errors import ProstoyMailError


@implementer(IOpenSSLContextFactory)
class ServerContext:
    def __init__(self, tls: Tls) -> None:
        if tls.cert is None or tls.key is None:
            raise ProstoyMailError("tls: cert and key are needed for the IMAP listeners")
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        try:
            context.use_certificate_chain_file(str(tls.cert))
            context.use_privatekey_file(str(tls.key))
            context.check_privatekey()
        except SSL.Error as exc:
            raise ProstoyMailError(f"tls: cannot load {tls.cert} / {tls.key}: {exc}") from None
        self.context = context

    def getContext(self) -> SSL.Context:
        return self.context


def tls_options(tls: Tls) -> ServerContext:
    return ServerContext(tls)
