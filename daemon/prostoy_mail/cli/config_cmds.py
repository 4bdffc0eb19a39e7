"""Commands on the configuration file: init, check, servers, mailboxes, gateways, rules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.edit import ConfigDocument, Value, write_new
from ..config.load import DOMAIN_RE, LOGIN_RE, config_warnings, load_config, load_presets, service_warnings
from ..config.model import (
    PROTOCOL_CHOICES,
    SECURITY_CHOICES,
    Config,
    Endpoint,
    Gateway,
    Rule,
    Server,
)
from ..errors import ConfigError, NotFound, ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET, explain
from ..mail.parse import parse_message
from ..mail.tokens import TaskTokens
from ..provisioning import (
    build_routing_table,
    check_references,
    ensure_gateway_task,
    ensure_mail_tasks,
    ensure_mailbox_task,
    gateway_source_key,
    mailbox_source_key,
)
from ..store.sqlite import SqliteStore
from .common import Context

if TYPE_CHECKING:
    from .common import Sub
BOOL = argparse.BooleanOptionalAction


def register(sub: Sub) -> None:
    p = sub.add_parser("init", help="write a new configuration file and create the store")
    p.add_argument("--domain", default="prostoy.biz", help="the CRM's mail domain (default: prostoy.biz)")
    p.add_argument("--store", help="store location (default: store.db beside the configuration)")
    p.set_defaults(handler=init)
    p = sub.add_parser("check", help="validate the configuration and print a summary")
    p.set_defaults(handler=check)
    _register_servers(sub)
    _register_mailboxes(sub)
    _register_gateways(sub)
    _register_rules(sub)


# --- init and check ---------------------------------------------------------------------


INIT_HEADER = """\
# prostoy-mail configuration. Reference: README.md, section "Configuration".
# The command line edits this file and keeps your comments; you may edit it by hand too.
# Check it with: prostoy-mail check

"""


def init(ctx: Context) -> int:
    domain = ctx.args.domain.lower()
    if not DOMAIN_RE.match(domain) or "." not in domain:
        raise ProstoyMailError(f'--domain: "{domain}" is not a domain name')
    path = ctx.config_path
    data = {
        "daemon": {"domain": domain, "store": ctx.args.store or "store.db", "hostname": f"mx.{domain}"},
        "listen": {"smtp": "127.0.0.1:2525"},
    }
    try:
        write_new(path, data, INIT_HEADER)
    except (FileExistsError, OSError) as exc:
        raise ProstoyMailError(str(exc)) from None
    config = load_config(path)
    SqliteStore(config.store_location()).close()
    ctx.say(f"wrote {path}; store {config.store_location()}")
    return 0


def check(ctx: Context) -> int:
    config = load_config(ctx.config_path)
    for warning in config_warnings(ctx.config_path, config):
        print(f"warning: {warning}", file=sys.stderr)
    location = config.store_location()
    store_note = ""
    if "://" in location:
        store_note = " (not checked: only SQLite is supported so far)"
    elif not Path(location).exists():
        store_note = " (does not exist yet: it is created on first use; references not checked)"
    else:
        store = SqliteStore(location)
        try:
            problems = check_references(config, store, str(ctx.config_path))
        finally:
            store.close()
        if problems:
            raise ConfigError(problems)
    for gateway in config.gateways:
        for secret in (gateway.password_file, gateway.smtp_password_file):
            if secret is not None and not secret.exists():
                print(f"warning: {ctx.config_path}: gateway {gateway.email}: password file {secret} "
                      "does not exist here (fine if systemd provides it)", file=sys.stderr)
    for warning in service_warnings(ctx.config_path, config):  # (once the references hold)
        print(f"warning: {warning}", file=sys.stderr)
    own = [s for s in config.servers if not s.preset]
    listeners = ", ".join(f"{n} {e}" for n, e in config.listen.items()) or "none"
    ctx.say(f"{ctx.config_path}: OK")
    ctx.say(f"  domain     {config.daemon.domain} (hostname {config.daemon.hostname})")
    ctx.say(f"  store      {location}{store_note}")
    ctx.say(f"  listeners  {listeners}")
    ctx.say(f"  servers    {len(config.servers)} ({len(config.servers) - len(own)} presets, {len(own)} custom)")
    ctx.say(f"  mailboxes  {len(config.mailboxes)}")
    ctx.say(f"  gateways   {len(config.gateways)}")
    ctx.say(f"  rules      {len(config.rules)} ({sum(r.is_global for r in config.rules)} global)")
    return 0


# --- servers ------------------------------------------------------------------------------


def _endpoint(text: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f'"{text}" is not HOST:PORT')
    return Endpoint(host.strip("[]"), int(port))


def _register_servers(sub: Sub) -> None:
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


def server_json(server: Server, config: Config) -> dict[str, Any]:
    def ep(e: Endpoint | None) -> str | None:
        return None if e is None else str(e)

    return {
        "name": server.name, "imap": ep(server.imap), "pop3": ep(server.pop3), "smtp": ep(server.smtp),
        "verify_certificate": server.verify_certificate, "ssl": server.ssl, "security": server.security,
        "files_sent_mail": server.files_sent_mail, "preset": server.preset,
        "used_by": [g.email for g in config.gateways if g.server == server.name],
    }


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


# --- domain mailboxes ---------------------------------------------------------------------


def _register_mailboxes(sub: Sub) -> None:
    mailboxes = sub.add_parser("mailbox", help="mailboxes on the CRM's own domain").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = mailboxes.add_parser("add", help="add a domain mailbox (and its task)")
    p.add_argument("login", help="sales -> sales@<domain>")
    p.add_argument("--owner", metavar="LOGIN", help="a personal mailbox of that user (default: corporate)")
    p.add_argument("--users", metavar="LOGIN,LOGIN", help="corporate: only these users may read it and send as it")
    p.set_defaults(handler=mailbox_add)
    p = mailboxes.add_parser("list", help="list domain mailboxes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=mailbox_list)
    p = mailboxes.add_parser("remove", help="remove a domain mailbox (its task and mail stay)")
    p.add_argument("login")
    p.set_defaults(handler=mailbox_remove)


def mailbox_add(ctx: Context) -> int:
    login = ctx.args.login.lower()
    if not LOGIN_RE.match(login):
        raise ProstoyMailError(f'"{login}" is not a valid mailbox login (lower-case letters, digits, ".", "_", "-")')
    if ctx.config().mailbox(login) is not None:
        raise ProstoyMailError(f'mailbox "{login}" already exists')
    doc = ctx.document()
    users = [u.strip() for u in (ctx.args.users or "").split(",") if u.strip()] or None
    if users and ctx.args.owner:
        raise ProstoyMailError("--users is for corporate mailboxes; a personal one (--owner) is its owner's alone")
    doc.append("mailboxes", {"login": login, "owner": ctx.args.owner, "users": users})
    config = ctx.save(doc)
    mailbox = config.mailbox(login)
    assert mailbox is not None
    task = ensure_mailbox_task(config, ctx.store(), mailbox)
    ctx.say(f"mailbox {mailbox.address(config.daemon.domain)} added; its task is {task.id} ({task.ref})")
    return 0


def mailbox_list(ctx: Context) -> int:
    config = ctx.config()
    store = ctx.store()
    ensure_mail_tasks(config, store)
    rows = []
    for m in config.mailboxes:
        task = store.task_for_source(f"mailbox:{m.login}")
        rows.append({"login": m.login, "address": m.address(config.daemon.domain), "owner": m.owner,
                     "kind": "personal" if m.owner else "corporate", "task": task.id if task else None,
                     "users": list(m.users)})
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["ADDRESS", "KIND", "OWNER", "TASK"],
                       [(r["address"], r["kind"], r["owner"], r["task"]) for r in rows])
    return 0


def mailbox_remove(ctx: Context) -> int:
    login = ctx.args.login.lower()
    doc = ctx.document()
    doc.remove("mailboxes", doc.index_of("mailboxes", "login", login))
    ctx.save(doc)
    ctx.say(f"mailbox {login} removed (its task and mail stay in the store)")
    return 0


# --- gateways -----------------------------------------------------------------------------


GATEWAY_FLAGS = ("forwarding", "keep_on_server", "upload_sent", "mark_read", "delete_on_server_when_deleted")


def _register_gateways(sub: Sub) -> None:
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


def _gateway_values(ctx: Context, *, adding: bool) -> dict[str, Value]:
    from datetime import date

    from .common import read_password

    a = ctx.args
    values: dict[str, Value] = {}
    if a.server:
        values["server"] = a.server.lower()
    if a.protocol:
        values["protocol"] = a.protocol
    if a.login:
        values["login"] = a.login
    if a.password_file:
        values.update(password_file=_absolute(a.password_file), password=None)
    elif a.password_prompt or (adding and sys.stdin.isatty()):
        values.update(password=read_password(None, f"Password of {a.email}", required=True), password_file=None)
    elif adding:
        raise ProstoyMailError("a gateway needs a password: give --password-file F or --password-prompt")
    if a.smtp_login:
        values["smtp_login"] = a.smtp_login
        if a.smtp_password_file:
            values.update(smtp_password_file=_absolute(a.smtp_password_file), smtp_password=None)
        else:
            values.update(smtp_password=read_password(None, f"SMTP password of {a.smtp_login}", required=True),
                          smtp_password_file=None)
    if a.same_smtp_login:
        values.update(smtp_login=None, smtp_password=None, smtp_password_file=None)
    if a.personal_for is not None:
        values["personal_for"] = a.personal_for or None
    for flag in GATEWAY_FLAGS:
        if getattr(a, flag) is not None:
            values[flag] = getattr(a, flag)
    if a.import_since:
        try:
            date.fromisoformat(a.import_since)
        except ValueError:
            raise ProstoyMailError(f'--import-since: "{a.import_since}" is not a date like 2026-01-31') from None
        values["import_since"] = a.import_since
    return values


def gateway_add(ctx: Context) -> int:
    email = ctx.args.email.lower()
    if ctx.config().gateway(email) is not None:
        raise ProstoyMailError(f'gateway "{email}" already exists (change it with: gateway edit {email})')
    values = _gateway_values(ctx, adding=True)
    doc = ctx.document()
    entry: dict[str, Value] = {"email": email, "server": None, "protocol": "imap", "login": email,
                               "password": None, "password_file": None, "smtp_login": None,
                               "smtp_password": None, "smtp_password_file": None, "personal_for": None,
                               "forwarding": True, "keep_on_server": True, "upload_sent": False,
                               "mark_read": False, "delete_on_server_when_deleted": False}
    doc.append("gateways", {**entry, **values})  # in this order; keys left None are not written
    config = ctx.save(doc)
    gateway = config.gateway(email)
    assert gateway is not None
    task = ensure_gateway_task(config, ctx.store(), gateway)
    ctx.say(f"gateway {email} added; its task is {task.id} ({task.ref})")
    return 0


def gateway_edit(ctx: Context) -> int:
    email = ctx.args.email.lower()
    doc = ctx.document()
    index = doc.index_of("gateways", "email", email)
    doc.update("gateways", index, _gateway_values(ctx, adding=False))
    config = ctx.save(doc)
    gateway = config.gateway(email)
    assert gateway is not None
    ensure_gateway_task(config, ctx.store(), gateway)
    ctx.say(f"gateway {email} changed")
    return 0


def gateway_json(gateway: Gateway, config: Config, task_id: int | None) -> dict[str, Any]:
    return {
        "email": gateway.email, "server": gateway.server, "protocol": gateway.protocol, "login": gateway.login,
        "smtp_login": gateway.smtp_login or gateway.login, "same_smtp_login": gateway.smtp_login is None,
        "personal_for": gateway.personal_for,
        **{flag: getattr(gateway, flag) for flag in GATEWAY_FLAGS},
        "import_since": gateway.import_since.isoformat() if gateway.import_since else None,
        "password_from": "file" if gateway.password_file else "config",
        "task": task_id,
    }


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
    doc = ctx.document()
    doc.remove("gateways", doc.index_of("gateways", "email", email))
    ctx.save(doc)
    ctx.say(f"gateway {email} removed (its task and mail stay in the store)")
    return 0


# --- rules --------------------------------------------------------------------------------


def _register_rules(sub: Sub) -> None:
    rules = sub.add_parser("rule", help="routing rules, checked in their order").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for action, handler in (("add", rule_add), ("edit", rule_edit)):
        p = rules.add_parser(action, help=f"{action} a rule")
        p.add_argument("name")
        scope = p.add_mutually_exclusive_group()
        scope.add_argument("--gateway", metavar="EMAIL", help="a rule of this gateway")
        scope.add_argument("--mailbox", metavar="LOGIN", help="a rule of this domain mailbox")
        if action == "edit":
            scope.add_argument("--global", dest="make_global", action="store_true", help="make it a global rule")
            p.add_argument("--rename", metavar="NEW_NAME")
        p.add_argument("--subject", metavar="S", help='comma-separated words, e.g. "счёт, invoice"')
        p.add_argument("--senders", metavar="S", help='comma-separated, e.g. "@client.ru, buh@"')
        p.add_argument("--recipients", metavar="S")
        what = p.add_mutually_exclusive_group(required=action == "add")
        what.add_argument("--task", metavar="TASK", help='"Project/Title" or a task id')
        what.add_argument("--ignore", action="store_true", help="the message goes to no task")
        p.add_argument("--assign-to", metavar="LOGIN")
        p.add_argument("--delete-after", action=BOOL, default=None)
        p.add_argument("--stop", action=BOOL, default=None)
        p.add_argument("--editable-by-owner", action=BOOL, default=None)
        if action == "add":
            p.add_argument("--position", type=int, metavar="N", help="place in the order (default: last)")
        p.set_defaults(handler=handler)
    p = rules.add_parser("list", help="list rules in their order")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=rule_list)
    p = rules.add_parser("remove", help="remove a rule")
    p.add_argument("name")
    p.set_defaults(handler=rule_remove)
    p = rules.add_parser("explain", help="which rules a message matches and where it would land (stores nothing)")
    p.add_argument("file", type=Path, metavar="FILE.eml")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--mailbox", metavar="LOGIN", help="as if it came to this domain mailbox")
    scope.add_argument("--gateway", metavar="EMAIL", help="as if it was fetched from this gateway")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=rule_explain)
    p = rules.add_parser("move", help="move a rule to a place in the order (1 = first)")
    p.add_argument("name")
    p.add_argument("position", type=int)
    p.set_defaults(handler=rule_move)


def _rule_values(a: argparse.Namespace, store: SqliteStore) -> dict[str, Value]:
    values: dict[str, Value] = {}
    if a.gateway:
        values.update(gateway=a.gateway.lower(), mailbox=None)
    if a.mailbox:
        values.update(mailbox=a.mailbox.lower(), gateway=None)
    if getattr(a, "make_global", False):
        values.update(gateway=None, mailbox=None)
    for key in ("subject", "senders", "recipients"):
        value = getattr(a, key)
        if value is not None:
            values[key] = value if value.strip() else None
    if a.task:
        task = store.resolve_task(a.task)  # fails early with a clear message
        values.update(action="comment", task=task.ref if not a.task.strip().isdigit() else task.id)
    if a.ignore:
        values.update(action="ignore", task=None, assign_to=None)
    if a.assign_to is not None:
        values["assign_to"] = a.assign_to or None
    for key in ("delete_after", "stop", "editable_by_owner"):
        if getattr(a, key) is not None:
            values[key] = getattr(a, key)
    return values


def rule_add(ctx: Context) -> int:
    a = ctx.args
    if ctx.config().rule(a.name) is not None:
        raise ProstoyMailError(f'rule "{a.name}" already exists')
    doc = ctx.document()
    doc.append("rules", {"name": a.name, **_rule_values(a, ctx.store())})
    count = len(ctx.config().rules) + 1
    if a.position is not None:
        if not 1 <= a.position <= count:
            raise ProstoyMailError(f"--position must be from 1 to {count}")
        doc.move("rules", count - 1, a.position - 1)
    ctx.save(doc)
    ctx.say(f"rule {a.name} added at position {a.position or count}")
    return 0


def rule_edit(ctx: Context) -> int:
    a = ctx.args
    doc = ctx.document()
    index = doc.index_of("rules", "name", a.name)
    values = _rule_values(a, ctx.store())
    if a.rename:
        if ctx.config().rule(a.rename) is not None:
            raise ProstoyMailError(f'rule "{a.rename}" already exists')
        values["name"] = a.rename
    doc.update("rules", index, values)
    ctx.save(doc)
    ctx.say(f"rule {a.name} changed")
    return 0


def rule_json(position: int, rule: Rule) -> dict[str, Any]:
    scope = "gateway" if rule.gateway else "mailbox" if rule.mailbox else "global"
    return {
        "position": position, "name": rule.name, "scope": scope, "gateway": rule.gateway,
        "mailbox": rule.mailbox, "subject": list(rule.subject), "senders": list(rule.senders),
        "recipients": list(rule.recipients), "action": rule.action, "task": rule.task,
        "assign_to": rule.assign_to, "delete_after": rule.delete_after, "stop": rule.stop,
        "editable_by_owner": rule.editable_by_owner,
    }


def rule_list(ctx: Context) -> int:
    rows = [rule_json(i, r) for i, r in enumerate(ctx.config().rules, 1)]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["#", "NAME", "SCOPE", "SUBJECT", "SENDERS", "RECIPIENTS", "ACTION", "STOP"],
                       [(r["position"], r["name"], r["gateway"] or r["mailbox"] or "global", r["subject"],
                         r["senders"], r["recipients"],
                         r["task"] if r["action"] == "comment" else "ignore", r["stop"]) for r in rows])
    return 0


def rule_remove(ctx: Context) -> int:
    doc = ctx.document()
    doc.remove("rules", doc.index_of("rules", "name", ctx.args.name))
    ctx.save(doc)
    ctx.say(f"rule {ctx.args.name} removed")
    return 0


def rule_move(ctx: Context) -> int:
    doc = ctx.document()
    index = doc.index_of("rules", "name", ctx.args.name)
    count = len(ctx.config().rules)
    if not 1 <= ctx.args.position <= count:
        raise ProstoyMailError(f"position must be from 1 to {count}")
    doc.move("rules", index, ctx.args.position - 1)
    ctx.save(doc)
    ctx.say(f"rule {ctx.args.name} is now number {ctx.args.position}")
    return 0




def rule_explain(ctx: Context) -> int:
    a = ctx.args
    try:
        raw = a.file.read_bytes()
    except OSError as exc:
        raise ProstoyMailError(f"{a.file}: cannot read: {exc.strerror}") from None
    config, store = ctx.config(), ctx.store()
    if a.mailbox and config.mailbox(a.mailbox.lower()) is None:
        raise NotFound(f'no mailbox "{a.mailbox}"')
    if a.gateway and config.gateway(a.gateway.lower()) is None:
        raise NotFound(f'no gateway "{a.gateway}"')
    table = build_routing_table(config, store)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    if a.mailbox:
        scopes = [mailbox_source_key(a.mailbox.lower())]
    elif a.gateway:
        scopes = [gateway_source_key(a.gateway.lower())]
    else:  # the domain mailboxes the message is addressed to
        parsed = parse_message(raw)
        suffix = "@" + config.daemon.domain
        logins = [addr[: -len(suffix)].split("+")[0] for addr in (*parsed.to, *parsed.cc) if addr.endswith(suffix)]
        scopes = [mailbox_source_key(login) for login in dict.fromkeys(logins) if config.mailbox(login)]
    result = explain(store, tokens, table, raw, scopes)
    tasks = {t.task_id: store.get_task(t.task_id) for t in result.decision.targets}
    lands_in = [{"task": t.task_id, "ref": tasks[t.task_id].ref, "routed_by": list(t.routed_by),
                 "assign_to": t.assign_to} for t in result.decision.targets]
    data: dict[str, Any] = {
        "subject": result.parsed.subject, "from": result.parsed.from_addr, "message_id": result.parsed.message_id,
        "through": scopes, "reply_to_task": result.reply_task_id,
        "rules": [{"rule": c.rule, "scope": c.scope, "matched": c.matched, "why": list(c.why)}
                  for c in result.decision.checks],
        "ignored_by": result.decision.ignored_by, "delete_after": result.decision.delete_after,
        "lands_in": lands_in,
        "bounce": result.parsed.bounce, "auto_reply": result.parsed.auto_reply,
    }
    if a.json:
        ctx.emit_json(data)
        return 0
    ctx.say(f"Message:  {data['subject']!r} from {data['from'] or '-'} ({data['message_id'] or 'no Message-ID'})")
    ctx.say(f"Through:  {', '.join(scopes) or 'no mailbox of this domain (only global rules apply)'}")
    if result.reply_task_id is not None:
        ctx.say(f"Reply:    to mail sent from task {result.reply_task_id}: no rules are consulted")
    for check in result.decision.checks:
        ctx.say(f"  {'MATCH' if check.matched else 'no   '} [{check.scope}] {check.rule}: {'; '.join(check.why)}")
    if result.decision.ignored_by:
        ctx.say(f"Ignored by rule {result.decision.ignored_by}: the message would go to no task")
    for target in result.decision.targets:
        assign = f", assigned to {target.assign_to}" if target.assign_to else ""
        ref = tasks[target.task_id].ref
        ctx.say(f"Lands in: task {target.task_id} ({ref}) by {', '.join(target.routed_by)}{assign}")
    if not lands_in and not result.decision.ignored_by:
        ctx.say("Lands in: no task")
    if result.decision.delete_after:
        ctx.say("Then:     deleted on the external server (delete_after)")
    return 0


def gateway_test(ctx: Context) -> int:
    """The Test button, on the saved gateway or on settings given here (before saving)."""
    import dataclasses

    from ..config.model import Gateway
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
