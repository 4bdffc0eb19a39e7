"""`init` and `check`: a new configuration file, and the whole of one checked."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.edit import write_new
from ..config.load import DOMAIN_RE, config_warnings, load_config, service_warnings
from ..errors import ConfigError, ProstoyMailError
from ..provisioning import (
    check_references,
)
from ..store.sqlite import SqliteStore
from .common import Context

if TYPE_CHECKING:
    from .common import Sub


def register(sub: Sub) -> None:
    p = sub.add_parser("init", help="write a new configuration file and create the store")
    p.add_argument("--domain", default="prostoy.biz", help="the CRM's mail domain (default: prostoy.biz)")
    p.add_argument("--store", help="store location (default: store.db beside the configuration)")
    p.set_defaults(handler=init)
    p = sub.add_parser("check", help="validate the configuration and print a summary")
    p.set_defaults(handler=check)


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


