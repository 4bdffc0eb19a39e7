"""`tls self-signed`: a certificate and key for trying the TLS listeners out (never for production:
mail clients will warn; use your CA's or Let's Encrypt's there)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ProstoyMailError
from .common import Context

if TYPE_CHECKING:
    from .common import Sub


def register(sub: Sub) -> None:
    tls = sub.add_parser("tls", help="certificates for the TLS listeners").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = tls.add_parser("self-signed", help="write a self-signed certificate and key to the [tls] cert and key paths")
    p.add_argument("--name", help="the host name in it (default: daemon.hostname)")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--if-missing", action="store_true", help="do nothing when both files exist")
    p.set_defaults(handler=self_signed)


def self_signed(ctx: Context) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    config = ctx.config()
    cert_path, key_path = config.tls.cert, config.tls.key
    if cert_path is None or key_path is None:
        raise ProstoyMailError(f"{config.path}: tls: set cert and key (the paths to write) first")
    if ctx.args.if_missing and cert_path.exists() and key_path.exists():
        ctx.say(f"{cert_path} and {key_path} exist; nothing done")
        return 0
    name = ctx.args.name or config.daemon.hostname
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=ctx.args.days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    ctx.say(f"wrote a self-signed certificate for {name} (valid {ctx.args.days} days) to {cert_path}, key to "
            f"{key_path}; mail clients will ask you to accept it")
    return 0


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    except OSError as exc:
        raise ProstoyMailError(f"{path}: cannot write: {exc.strerror}") from None
