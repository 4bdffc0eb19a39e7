"""`prostoy-mail serve`: run the daemon in the foreground (systemd runs it so);
`prostoy-mail reload`: have the running daemon read its configuration again, and say what it did."""

from __future__ import annotations

import argparse

from ..errors import ConfigError, ProstoyMailError
from ..provisioning import check_references
from .common import Context
from .daemon_link import NO_DAEMON, apply_to_running_daemon


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the daemon in the foreground")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=serve)
    p = sub.add_parser("reload", help="have the running daemon read the configuration file again "
                                      "(and wait for it to apply or refuse it)")
    p.set_defaults(handler=reload)


def serve(ctx: Context) -> int:
    from ..daemon import run

    return run(ctx.config_path, ctx.args.log_level)


def reload(ctx: Context) -> int:
    """Like `systemctl reload`, but it waits for the daemon's word: the file is checked here first
    (a file that does not load, or names a task the store lacks, is named with its problem and
    the daemon is not disturbed); then the daemon reads it and says which generation runs."""
    config = ctx.config()
    store = ctx.store()
    problems = check_references(config, store, str(ctx.config_path))
    if problems:
        raise ConfigError(problems)
    said = apply_to_running_daemon(config, store, saved=False)
    if said == NO_DAEMON:
        raise ProstoyMailError("no daemon is running on this store: nothing to reload")
    ctx.say(said)
    return 0
