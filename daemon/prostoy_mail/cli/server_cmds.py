"""`server ...`: the mail servers gateways use (presets and custom ones)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..config.edit import ConfigDocument, Value
from ..config.load import load_presets
from ..config.model import (
    SECURITY_CHOICES,
    Endpoint,
    Server,
)
from ..errors import NotFound, ProstoyMailError
from ..views import server_json
from .common import Context

if TYPE_CHECKING:
    from .common import Sub
BOOL = argparse.BooleanOptionalAction


def _endpoint(text: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f'"{text}" is not HOST:PORT')
    return Endpoint(host.strip("[]"), int(port))


def register(sub: Sub) -> None:
    servers = sub.add_parser("server", help="mail servers (presets and custom)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = servers.add_parser("list", help="list mail servers")
    p.add_argument("--hide-unused", action="store_true", help="hide servers no gateway uses")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=server_list)
    for action, handler in (("add", server_add), ("edit", server_edit)):
        p = servers.add_parser(action, help=f"{action} a custom mail server")
        p.add_argument("name", help="the server's address, e.g. mail.example.org")
        p.add_argument("--imap", type=_endpoint, metavar="HOST:PORT")
        p.add_argument("--pop3", type=_endpoint, metavar="HOST:PORT")
        p.add_argument("--smtp", type=_endpoint, metavar="HOST:PORT")
        p.add_argument("--verify-certificate", action=BOOL, default=None)
        p.add_argument("--ssl", action=BOOL, default=None, help="implicit TLS for IMAP/POP3 (default: yes)")
        p.add_argument("--security", choices=SECURITY_CHOICES, help="SMTP security (default: none)")
        p.add_argument("--files-sent-mail", action=BOOL, default=None,
                       help="the server files SMTP mail in Sent itself (no upload)")
        p.set_defaults(handler=handler)
    p = servers.add_parser("remove", help="remove a custom mail server")
    p.add_argument("name")
    p.set_defaults(handler=server_remove)


def server_list(ctx: Context) -> int:
    config = ctx.config()
    rows = [server_json(s, config) for s in config.servers]
    if ctx.args.hide_unused:
        rows = [r for r in rows if r["used_by"]]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["NAME", "IMAP", "POP3", "SMTP", "SSL", "SMTP SECURITY", "VERIFY", "PRESET", "USED BY"],
                       [(r["name"], r["imap"], r["pop3"], r["smtp"], r["ssl"], r["security"],
                         r["verify_certificate"], r["preset"], r["used_by"]) for r in rows])
    return 0


def _server_values(a: argparse.Namespace) -> dict[str, Value]:
    values: dict[str, Value] = {"imap": a.imap, "pop3": a.pop3, "smtp": a.smtp,
                                "verify_certificate": a.verify_certificate, "ssl": a.ssl,
                                "security": a.security, "files_sent_mail": a.files_sent_mail}
    return {k: v for k, v in values.items() if v is not None}


def server_add(ctx: Context) -> int:
    name = ctx.args.name.lower()
    if ctx.config().server(name) is not None:
        raise ProstoyMailError(f'server "{name}" already exists (change it with: server edit {name})')
    doc = ctx.document()
    doc.append("servers", {"name": name, **_server_values(ctx.args)})
    ctx.save(doc)
    ctx.say(f"server {name} added")
    return 0


def server_edit(ctx: Context) -> int:
    name = ctx.args.name.lower()
    server = ctx.config().server(name)
    if server is None:
        raise NotFound(f'no server "{name}"')
    doc = ctx.document()
    changes = _server_values(ctx.args)
    if _in_file(doc, "servers", "name", name):
        doc.update("servers", doc.index_of("servers", "name", name), changes)
    else:  # a preset: a full entry of the same name in the file replaces it
        doc.append("servers", {**_server_entry(server), **changes})
    ctx.save(doc)
    ctx.say(f"server {name} changed")
    return 0


def _server_entry(server: Server) -> dict[str, Value]:
    return {"name": server.name, "imap": server.imap, "pop3": server.pop3, "smtp": server.smtp,
            "verify_certificate": server.verify_certificate, "ssl": server.ssl,
            "security": server.security, "files_sent_mail": server.files_sent_mail}


def _in_file(doc: ConfigDocument, section: str, key: str, value: str) -> bool:
    try:
        doc.index_of(section, key, value)
    except NotFound:
        return False
    return True


def server_remove(ctx: Context) -> int:
    name = ctx.args.name.lower()
    server = ctx.config().server(name)
    if server is None:
        raise NotFound(f'no server "{name}"')
    doc = ctx.document()
    if not _in_file(doc, "servers", "name", name):
        raise ProstoyMailError(f'"{name}" is a preset shipped with prostoy-mail; it cannot be removed')
    doc.remove("servers", doc.index_of("servers", "name", name))
    ctx.save(doc)  # refuses, naming the gateway, while a gateway still uses a custom server
    again = " (the preset applies again)" if any(p.name == name for p in load_presets()) else ""
    ctx.say(f"server {name} removed{again}")
    return 0


