"""`org ...` and `domain ...`: the organisations of a hosting installation and their own domains.

The organisation the configuration file declares ([organisation], default slug "main") is
one of them; `org add` makes others, which live in the store only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..auth.password_hashes import hash_password
from ..config.model import LIMIT_NAMES
from ..errors import Invalid, ProstoyMailError
from ..operations.domains import check_removable, domain_name
from ..operations.organisations import limit_changes, limit_rows, organisation_counts
from ..store.ports import Organisation
from ..views import organisation_json
from .common import Context, read_password
from .daemon_link import apply_to_running_daemon

if TYPE_CHECKING:
    from .common import Sub


def register(sub: Sub) -> None:
    orgs = sub.add_parser("org", help="organisations (hosting: many on one installation)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = orgs.add_parser("add", help="add an organisation and its owner")
    p.add_argument("slug", help="a-z, 0-9 and -, unique")
    p.add_argument("--name", required=True)
    p.add_argument("--owner", required=True, metavar="LOGIN", help="its owner's login (unique across the installation)")
    p.add_argument("--owner-name", metavar="NAME")
    p.add_argument("--password-file", metavar="F", help="the owner's password (- : standard input)")
    p.set_defaults(handler=org_add)
    p = orgs.add_parser("list", help="list organisations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=org_list)
    p = orgs.add_parser("show", help="one organisation")
    p.add_argument("slug")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=org_show)
    p = orgs.add_parser("limits", help="an organisation's limits and what it uses of them; set its own")
    p.add_argument("slug")
    for name in LIMIT_NAMES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="N|default",
                       help=f"its own limit of {name.replace('_', ' ')} (default: back to [limits])")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=org_limits)
    p = orgs.add_parser("remove", help="remove an organisation and everything it owns")
    p.add_argument("slug")
    p.add_argument("--yes", action="store_true", help="really: its users, tasks and mail go too")
    p.set_defaults(handler=org_remove)

    domains = sub.add_parser("domain", help="organisations' own mail domains").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = domains.add_parser("add", help="give an organisation its own mail domain (its MX pointed at us)")
    p.add_argument("domain")
    p.set_defaults(handler=domain_add)
    p = domains.add_parser("list", help="list own domains")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=domain_list)
    p = domains.add_parser("remove", help="remove an own domain")
    p.add_argument("domain")
    p.set_defaults(handler=domain_remove)


def org_json(ctx: Context, organisation: Organisation) -> dict[str, Any]:
    return organisation_json(organisation, organisation_counts(ctx.store(), organisation, ctx.file_config()))


def org_add(ctx: Context) -> int:
    a = ctx.args
    store = ctx.store()
    password = read_password(a.password_file, f"Password for {a.owner}", required=False) if a.password_file else None
    with store.transaction():
        organisation = store.add_organisation(a.slug, a.name.strip() or a.slug)
        with store.acting_for(organisation.id):
            store.add_user(a.owner, a.owner_name or a.owner, hash_password(password) if password else None, True)
    ctx.say(f"organisation {organisation.slug} added, owned by {a.owner}")
    return 0


def org_list(ctx: Context) -> int:
    rows = [org_json(ctx, o) for o in ctx.store().list_organisations()]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["SLUG", "NAME", "OWNER", "FILE", "DOMAINS", "USERS", "MAILBOXES", "GATEWAYS", "RULES"],
                       [(r["slug"], r["name"], r["owner"], r["file_managed"], r["domains"], r["users"],
                         r["mailboxes"], r["gateways"], r["rules"]) for r in rows])
    return 0


def org_show(ctx: Context) -> int:
    data = org_json(ctx, ctx.store().organisation(ctx.args.slug))
    if ctx.args.json:
        ctx.emit_json(data)
    else:
        for key, value in data.items():
            ctx.say(f"{key + ':':14}{', '.join(value) if isinstance(value, list) else value}")
    return 0


def org_limits(ctx: Context) -> int:
    store = ctx.store()
    organisation = store.organisation(ctx.args.slug)
    changes = limit_changes({name: getattr(ctx.args, name) for name in LIMIT_NAMES
                             if getattr(ctx.args, name) is not None}, lambda name: f"--{name.replace('_', '-')}")
    if changes:
        store.set_limit_overrides(organisation.id, changes)
    rows = limit_rows(store, organisation, ctx.file_config())
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["LIMIT", "VALUE", "FROM", "USED"],
                       [(name, r["limit"], organisation.slug if r["own"] else "[limits]", r["used"])
                        for name, r in rows.items()])
    return 0


def org_remove(ctx: Context) -> int:
    store = ctx.store()
    organisation = store.organisation(ctx.args.slug)
    if not ctx.args.yes:
        raise ProstoyMailError(f'removing "{organisation.slug}" removes its users, projects, tasks, comments and '
                               "domains for good: add --yes")
    if organisation.file_managed:
        store.remove_organisation(organisation.id)  # (refused, saying where it is declared)
    config = ctx.file_config()
    if store.org_entries(organisation.id):
        # Its settings go first, and the running daemon applies that: its gateways' watchers
        # stop (none is left fetching into tasks about to go) and its mailboxes take no more mail.
        store.replace_org_entries(organisation.id, {})
        print(apply_to_running_daemon(config, store, organisation=organisation), file=sys.stderr)
    removed = store.remove_organisation(organisation.id)
    ctx.say(f"organisation {organisation.slug} removed: " + ", ".join(f"{n} {k}" for k, n in removed.items()))
    print(apply_to_running_daemon(config, store, organisation=organisation), file=sys.stderr)
    return 0


def _domain(ctx: Context) -> str:
    return domain_name(ctx.args.domain, ctx.config().daemon.domain)


def domain_add(ctx: Context) -> int:
    if getattr(ctx.args, "org", None) is None:
        raise Invalid("say whose domain it is: prostoy-mail --org SLUG domain add DOMAIN")
    domain = _domain(ctx)
    organisation = ctx.organisation()
    ctx.store().add_domain(domain, organisation.id)
    ctx.say(f"domain {domain} added to {organisation.slug}; its mailboxes: --org {organisation.slug} mailbox add "
            f"LOGIN@{domain}")
    _tell_the_daemon(ctx, organisation)  # (the MX takes mail for it from now on)
    return 0


def _tell_the_daemon(ctx: Context, organisation: Organisation) -> None:
    print(apply_to_running_daemon(ctx.file_config(), ctx.store(), organisation=organisation), file=sys.stderr)


def domain_list(ctx: Context) -> int:
    rows = [{"domain": d, "org": slug} for d, slug in ctx.store().list_domains()]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["DOMAIN", "ORG"], [(r["domain"], r["org"]) for r in rows])
    return 0


def domain_remove(ctx: Context) -> int:
    domain = _domain(ctx)
    store = ctx.store()
    owner = store.domain_owner(domain)
    if owner is not None:
        organisation = store.organisation_by_id(owner)
        check_removable(domain, organisation, ctx.settings_of(organisation))
    store.remove_domain(domain)
    ctx.say(f"domain {domain} removed")
    if owner is not None:
        _tell_the_daemon(ctx, organisation)
    return 0
