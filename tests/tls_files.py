"""A server certificate and key, signed by a test CA, written where a [tls] section expects them."""

from __future__ import annotations

from pathlib import Path

import trustme


def write_server_pair(ca: trustme.CA, folder: Path, *names: str, common_name: str | None = None) -> None:
    """`folder`/cert.pem and `folder`/key.pem for these host names (isync 1.4 wants a common name)."""
    cert = ca.issue_cert(*names, common_name=common_name)
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
