"""The `prostoy-mail` command line.

Every error is one clean line: configuration problems as `FILE: key.path: problem`
(all of them, exit status 2), anything else as `prostoy-mail: problem` (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import __version__
from ..config.load import default_config_path
from ..errors import ConfigError, Invalid, ProstoyMailError
from . import (
    auth_cmds,
    gateway_cmds,
    mailbox_cmds,
    org_cmds,
    outbound_cmds,
    quarantine_cmds,
    rule_cmds,
    serve_cmd,
    server_cmds,
    setup_cmds,
    store_cmds,
    tls_cmds,
)
from .common import Context


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prostoy-mail",
        description="The mail daemon of the Prostoy.biz CRM: mail becomes comments on tasks.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="configuration file (default: $PROSTOY_MAIL_CONFIG, "
                             "else /etc/prostoy-mail/prostoy-mail.toml)")
    parser.add_argument("--org", metavar="SLUG",
                        help="the organisation to work for (default: the one the configuration file declares)")
    parser.add_argument("--version", action="version", version=f"prostoy-mail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cmd.register(sub)
    setup_cmds.register(sub)
    server_cmds.register(sub)
    mailbox_cmds.register(sub)
    gateway_cmds.register(sub)
    rule_cmds.register(sub)
    store_cmds.register(sub)
    quarantine_cmds.register(sub)
    outbound_cmds.register(sub)
    tls_cmds.register(sub)
    auth_cmds.register(sub)
    org_cmds.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Context(args=args, config_path=args.config or default_config_path())
    try:
        return int(args.handler(ctx))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except Invalid as exc:
        print(f"prostoy-mail: {exc}", file=sys.stderr)
        return 2
    except ProstoyMailError as exc:
        print(f"prostoy-mail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `prostoy-mail task list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
