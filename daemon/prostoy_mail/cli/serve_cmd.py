"""`prostoy-mail serve`: run the daemon in the foreground (systemd runs it so)."""

from __future__ import annotations

import argparse

from .common import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the daemon in the foreground")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=serve)


def serve(ctx: Context) -> int:
    from ..daemon import run

    return run(ctx.config_path, ctx.args.log_level)
