"""`gateway ...`: external mailboxes connected to the CRM, and the Test button."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.model import (
    PROTOCOL_CHOICES,
    Gateway,
)
from ..errors import NotFound, ProstoyMailError
from ..operations.gateways import GatewayChange, add_gateway, edit_gateway, remove_gateway
from ..provisioning import (
    ensure_mail_tasks,
)
from ..views import GATEWAY_FLAGS, gateway_json
from .common import Context

if TYPE_CHECKING:
    from .common import Sub
BOOL = argparse.BooleanOptionalAction


def register(sub: Sub) -> None:
    gateways = sub.add_parser("gateway", help="external mailboxes connected to the CRM").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for action, handler in (("add", gateway_add), ("edit", gateway_edit)):
        p = gateways.add_parser(action, help=f"{action} a gateway")
        p.add_argument("email")
        p.add_argument("--server", required=action == "add", metavar="NAME")
        p.add_argument("--protocol", choices=PROTOCOL_CHOICES)
        p.add_argument("--login", metavar="L", help="default: the e-mail address")
        p.add_argument("--password-file", metavar="F",
                       help="file holding the password (kept as password_file; e.g. a systemd credential)")
        p.add_argument("--password-prompt", action="store_true",
                       help="ask for the password and keep it in the configuration file")
        p.add_argument("--smtp-login", metavar="L", help="a different login for SMTP")
        p.add_argument("--smtp-password-file", metavar="F")
        p.add_argument("--same-smtp-login", action="store_true", help="(edit) use the same login for SMTP again")
        p.add_argument("--personal-for", metavar="LOGIN", help="the employee whose personal mailbox this is")
        for flag in GATEWAY_FLAGS:
            p.add_argument(f"--{flag.replace('_', '-')}", action=BOOL, default=None)
        p.add_argument("--import-since", metavar="YYYY-MM-DD", help="also import older mail since this day")
        p.set_defaults(handler=handler)
    p = gateways.add_parser("test", help="check that a gateway's settings work (connect, TLS, log in), step by step")
    p.add_argument("email")
    p.add_argument("--server", metavar="NAME", help="test with this server (also before the gateway is saved)")
    p.add_argument("--protocol", choices=PROTOCOL_CHOICES)
    p.add_argument("--login", metavar="L")
    p.add_argument("--password-file", metavar="F")
    p.add_argument("--smtp-login", metavar="L")
    p.add_argument("--smtp-password-file", metavar="F")
    p.add_argument("--no-smtp", action="store_true", help="test fetching only")
    p.set_defaults(handler=gateway_test)
    p = gateways.add_parser("list", help="list gateways")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=gateway_list)
    p = gateways.add_parser("remove", help="remove a gateway (its task and mail stay)")
    p.add_argument("email")
    p.set_defaults(handler=gateway_remove)


def _absolute(file: str | None) -> str | None:
    if file is None:
        return None
    path = Path(file).absolute()
    if not path.is_file():
        raise ProstoyMailError(f"{file}: no such file")
    return str(path)


def _secret(ctx: Context, file: str | None, prompt: str) -> tuple[str | None, str | None]:
    """(password, password_file) as the organisation keeps it: for the file's, the file's path
    (e.g. a systemd credential) or the password itself; an organisation in the store keeps the
    password itself (it may not name the daemon's files), read here from the file."""
    from .common import read_password

    if file is not None and not ctx.in_store():
        return None, _absolute(file)
    return read_password(file, prompt, required=True), None


def _change(ctx: Context, *, adding: bool) -> GatewayChange:
    a = ctx.args
    password = password_file = smtp_password = smtp_password_file = None
    if a.password_file or a.password_prompt or (adding and sys.stdin.isatty()):
        password, password_file = _secret(ctx, a.password_file, f"Password of {a.email}")
    elif adding:
        raise ProstoyMailError("a gateway needs a password: give --password-file F or --password-prompt")
    if a.smtp_login:
        smtp_password, smtp_password_file = _secret(ctx, a.smtp_password_file, f"SMTP password of {a.smtp_login}")
    return GatewayChange(server=a.server, protocol=a.protocol, login=a.login, password=password,
                         password_file=password_file, smtp_login=a.smtp_login, smtp_password=smtp_password,
                         smtp_password_file=smtp_password_file, same_smtp_login=a.same_smtp_login,
                         personal_for=a.personal_for,
                         flags={flag: getattr(a, flag) for flag in GATEWAY_FLAGS if getattr(a, flag) is not None},
                         import_since=a.import_since)


def gateway_add(ctx: Context) -> int:
    email = ctx.args.email.lower()
    if ctx.config().gateway(email) is not None:  # (before a password is asked for)
        raise ProstoyMailError(f'gateway "{email}" already exists (change it with: gateway edit {email})')
    _, task = add_gateway(ctx, email, _change(ctx, adding=True))
    ctx.say(f"gateway {email} added; its task is {task.id} ({task.ref})")
    return 0


def gateway_edit(ctx: Context) -> int:
    email = ctx.args.email.lower()
    edit_gateway(ctx, email, _change(ctx, adding=False))
    ctx.say(f"gateway {email} changed")
    return 0


def gateway_list(ctx: Context) -> int:
    config = ctx.config()
    store = ctx.store()
    ensure_mail_tasks(config, store)
    rows = []
    for g in config.gateways:
        task = store.task_for_source(f"gateway:{g.email}")
        row = gateway_json(g, config, task.id if task else None)
        state = store.gateway_state(g.email)
        row.update(last_success=state.last_success if state else None,
                   last_error=state.last_error if state else None,
                   last_error_at=state.last_error_at if state else None,
                   next_attempt=state.next_attempt if state else None,
                   failures=state.failures if state else 0,
                   position=f"{state.folder} UID {state.last_uid}" if state and state.folder else None)
        rows.append(row)
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["EMAIL", "SERVER", "PROTOCOL", "PERSONAL FOR", "FORWARDING", "TASK", "LAST SUCCESS",
                        "LAST ERROR", "NEXT ATTEMPT"],
                       [(r["email"], r["server"], r["protocol"], r["personal_for"], r["forwarding"], r["task"],
                         r["last_success"], r["last_error"], r["next_attempt"] if r["failures"] else None)
                        for r in rows])
    return 0


def gateway_remove(ctx: Context) -> int:
    email = ctx.args.email.lower()
    remove_gateway(ctx, email)
    ctx.say(f"gateway {email} removed (its task and mail stay in the store)")
    return 0


def gateway_test(ctx: Context) -> int:
    """The Test button, on the saved gateway or on settings given here (before saving)."""
    import dataclasses

    from ..fetch.probe import probe_fetching, probe_sending

    a = ctx.args
    config = ctx.config()
    email = a.email.lower()
    gateway = config.gateway(email)
    if gateway is None:
        if not (a.server and a.password_file):
            raise NotFound(f'no gateway "{email}"; to test settings before saving, give --server and --password-file')
        gateway = Gateway(email=email, server=a.server.lower(), login=email)
    changes: dict[str, Any] = {}
    if a.server:
        changes["server"] = a.server.lower()
    if a.protocol:
        changes["protocol"] = a.protocol
    if a.login:
        changes["login"] = a.login
    if a.password_file:
        changes.update(password=None, password_file=Path(a.password_file).absolute())
    if a.smtp_login:
        changes.update(smtp_login=a.smtp_login, smtp_password=None,
                       smtp_password_file=Path(a.smtp_password_file).absolute() if a.smtp_password_file else None)
    gateway = dataclasses.replace(gateway, **changes)
    server = config.server(gateway.server)
    if server is None:
        raise NotFound(f'unknown server "{gateway.server}" (known: {", ".join(s.name for s in config.servers)})')
    steps = probe_fetching(gateway, server)
    if not a.no_smtp:
        steps += probe_sending(gateway, server)
    for step in steps:
        ctx.say(str(step))
    failed = [s for s in steps if not s.ok]
    ctx.say(f"{gateway.email}: " + ("all steps OK" if not failed else
                                     f"FAILED at {', '.join(f'{s.protocol} {s.step}' for s in failed)}"))
    return 1 if failed else 0
