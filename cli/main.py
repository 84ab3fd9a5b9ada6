"""The ``wattflow`` command: one entry point, a sub-command per job.

Each command group lives in its own module of this package (``stack``, ``feed``, ...) with a
``register(subparsers)`` function; :data:`COMMANDS` is the registry, in the order ``--help`` lists them. This
module only assembles them and turns wattflow's errors into a message and an exit code. The command modules
import :mod:`cli.console` for the shared consoles, never this module.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from cli import (
    adapter,
    completion,
    config,
    demo,
    feed,
    kill,
    loadtest,
    positions,
    replay,
    run,
    stack,
    tail,
    topics,
    venue,
)
from cli import console as consoles
from cli.console import HelpFormatter
from wattflow import __version__
from wattflow.errors import WattflowError

#: The command groups, in the order ``--help`` lists them.
COMMANDS = (demo, stack, feed, replay, loadtest, run, topics, tail, venue, adapter, kill, positions, config, completion)

_DESCRIPTION = """\
wattflow: a streaming power-trading engine for European short-term power markets.

Market feeds stream through Kafka into Bytewax dataflows that store every tick in QuestDB, compute
features and signals, and trade under pre-trade risk checks. Settings come from WATTFLOW_* environment
variables and an optional settings file (see `wattflow config`).
"""

_EXAMPLES = """\
first steps:
  # the stack, then a simulated day traded live, then its report
  wattflow demo
  # what the broker holds, and the demo run's orders
  wattflow topics
  wattflow tail orders --run latest -n 20
  # every command has its own help and examples
  wattflow COMMAND --help
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattflow", description=_DESCRIPTION, epilog=_EXAMPLES, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"wattflow {__version__}")
    parser.add_argument(
        "--settings", type=Path, metavar="FILE",
        help="settings file in dotenv syntax (WATTFLOW_...=value); default $WATTFLOW_SETTINGS_FILE or ./wattflow.env",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="on an error, show its traceback too")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    parser.set_defaults(root_parser=parser)  # for `wattflow completion`, which describes the whole command line
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A shell that starts us in the background without job control hands us SIGINT ignored, and Python then
    # installs no handler: `kill -INT` (what Ctrl-C sends) would do nothing. It stops wattflow wherever it runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("matplotlib", "PIL", "numba", "httpx", "httpcore"):  # their INFO lines look like our news
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warn_unknown_variables(getattr(args, "settings", None))
    try:
        code: int = args.func(args)
    except WattflowError as error:
        if args.debug:
            traceback.print_exc()
        consoles.err_console.print(f"[bold red]error[/] [{error.code}] {error}", markup=True, highlight=False)
        return 1
    except KeyboardInterrupt:
        consoles.err_console.print("interrupted")
        return 130
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        if args.debug:
            traceback.print_exc()
        what = {FileNotFoundError: "no such file", IsADirectoryError: "a directory, not a file",
                PermissionError: "not allowed to read or write"}[type(error)]
        consoles.err_console.print(f"[bold red]error[/] [FILE] {what}: {error.filename or error}", markup=True)
        consoles.err_console.print("  what to do: check the path (relative paths start from "
                                   f"{Path.cwd()})", markup=False)
        return 1
    except Exception as error:  # a bug or an unforeseen failure: one line, the traceback with --debug
        if args.debug:
            raise
        consoles.err_console.print(f"[bold red]error[/] [INTERNAL] {type(error).__name__}: {error}", markup=True)
        consoles.err_console.print("  what to do: run it again with --debug for the traceback, and report it")
        return 1
    return code


def warn_unknown_variables(settings_file: Path | None) -> None:
    """One warning line per ``WATTFLOW_*`` variable (environment or settings file) that no setting reads."""
    import os

    from dotenv import dotenv_values

    from wattflow.environment import unknown_variables
    from wattflow.settings import default_settings_file, wattflow_variables

    names: dict[str, str] = dict(os.environ)
    path = settings_file or default_settings_file()
    if path is not None and Path(path).exists():
        names.update({k: v or "" for k, v in dotenv_values(path).items()})
    for name, close in unknown_variables(names, wattflow_variables()):
        guess = f"; did you mean {close}?" if close else " (`wattflow config` lists them all)"
        consoles.err_console.print(f"[yellow]warning[/] {name} is not a wattflow setting{guess}")


if __name__ == "__main__":
    sys.exit(main())
