"""``wattflow config``: print the effective settings, secrets masked."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from rich.table import Table

from cli.console import HelpFormatter

EXAMPLES_CONFIG = """\
examples:
  # every setting, its value and where it came from
  wattflow config
  # one group of settings
  wattflow config --json | jq .kafka
  # check an override before a run
  WATTFLOW_EXECUTION_MAX_CLIP_MW=2 wattflow config
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config", help="print the effective settings (secrets masked)",
        description="Print the settings wattflow would use now: defaults, overridden by the settings file, "
        "overridden by WATTFLOW_* environment variables. Secrets print as **********.",
        epilog=EXAMPLES_CONFIG, formatter_class=HelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}_"))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def run(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings

    masked = load_settings(args).masked()
    if args.json:
        console.print_json(orjson.dumps(masked, default=str).decode())
        return 0
    table = Table(title="wattflow settings", show_lines=False, box=None, title_justify="left")
    table.add_column("environment variable", no_wrap=True)  # copied into a shell: never cut
    table.add_column("value", overflow="fold")
    for name, value in _flatten(masked):
        table.add_row(f"WATTFLOW_{name.upper()}", "" if value is None else str(value))
    console.print(table)
    return 0
