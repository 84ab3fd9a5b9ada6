"""``wattflow completion bash|zsh|tcsh``: a shell completion script for every command and option."""

from __future__ import annotations

import argparse
from typing import Any

from cli.console import HelpFormatter

EXAMPLES_COMPLETION = """\
examples:
  # bash, this shell only
  source <(wattflow completion bash)
  # bash, for good
  wattflow completion bash > ~/.local/share/bash-completion/completions/wattflow
  # zsh: a directory on $fpath
  wattflow completion zsh > ~/.zfunc/_wattflow
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script (bash, zsh, tcsh)",
        description="Print a completion script for the shell: commands, options and their choices complete with "
        "Tab. Generated from the same definitions as --help (shtab), so it never falls behind.",
        epilog=EXAMPLES_COMPLETION, formatter_class=HelpFormatter)
    parser.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell to complete for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(args.root_parser, shell=args.shell))  # set by cli.main: the whole command line
    return 0
