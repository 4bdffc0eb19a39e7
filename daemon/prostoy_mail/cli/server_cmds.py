"""`server ...`: the mail servers gateways use (presets and custom ones)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..config.model import (
    SECURITY_CHOICES,
    Endpoint,
)
from ..operations.servers import ServerChange, add_server, edit_server, remove_server
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


def _change(a: argparse.Namespace) -> ServerChange:
    return ServerChange(imap=a.imap, pop3=a.pop3, smtp=a.smtp, verify_certificate=a.verify_certificate, ssl=a.ssl,
                        security=a.security, files_sent_mail=a.files_sent_mail)


def server_add(ctx: Context) -> int:
    server = add_server(ctx, ctx.args.name, _change(ctx.args))
    ctx.say(f"server {server.name} added")
    return 0


def server_edit(ctx: Context) -> int:
    server = edit_server(ctx, ctx.args.name, _change(ctx.args))
    ctx.say(f"server {server.name} changed")
    return 0


def server_remove(ctx: Context) -> int:
    name = ctx.args.name.lower()
    again = " (the preset applies again)" if remove_server(ctx, name) else ""
    ctx.say(f"server {name} removed{again}")
    return 0
