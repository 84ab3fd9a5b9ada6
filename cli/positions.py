"""``wattflow positions``: the latest position and PnL of every product, read from QuestDB's ``positions`` table."""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

import orjson
from rich.table import Table

from cli.console import HelpFormatter
from connectors.questdb.sql import QuestDBClient
from reports.fit import fit_columns
from wattflow.domain import Product, area_rules
from wattflow.errors import QuestDBError
from wattflow.positions import TOTAL

_COLUMNS = ("ts, product, area, position_mw, avg_price_eur_per_mwh, mark_eur_per_mwh, realised_pnl_eur, "
            "unrealised_pnl_eur, pnl_eur, traded_mw, imbalance_exposure_mw, gate_closed, trading_state")
_WHAT_TO_DO = "start the stack with `wattflow stack up` and the execution flow with `wattflow run execution`"
#: Product keys and areas go into SQL literals: only the characters a key can hold.
_SAFE = re.compile(r"^[A-Za-z0-9:\-_.]+$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


EXAMPLES_POSITIONS = """\
examples:
  # the latest position of every product, and the TOTAL
  wattflow positions
  # one area, one JSON object per line
  wattflow positions --area DE-LU --json
  wattflow positions --history --product DE-LU:2018-10-28T12:00Z:PT15M
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "positions", help="show positions and PnL per product (marked to market) from QuestDB",
        description="Show the latest position of every product the execution flow traded, from QuestDB's "
        "positions table: signed MW, average and mark prices (EUR/MWh), realised, unrealised and total PnL (EUR), "
        "MW traded, and imbalance exposure (what was still open at gate closure), with the account TOTAL last. "
        "--history shows how one product's row (TOTAL by default) changed over time.",
        epilog=EXAMPLES_POSITIONS, formatter_class=HelpFormatter)
    parser.add_argument("--product",
                        help="only this product key (e.g. DE-LU:2018-10-28T12:00Z:PT15M), and the account TOTAL")
    parser.add_argument("--area", help="only products of this delivery area (e.g. DE-LU)")
    parser.add_argument("--history", action="store_true",
                        help="the rows of one product over time (--product, default TOTAL), newest last")
    parser.add_argument("--limit", type=int, default=50, help="with --history: the latest N rows (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--table", default="positions", help="the table to read (default positions)")
    parser.set_defaults(func=run)


def _literal(value: str, what: str) -> str:
    if not _SAFE.match(value):
        raise QuestDBError(f"{what} {value!r} holds characters no {what} has")
    return f"'{value}'"


def latest_positions(client: QuestDBClient, *, product: str | None = None, area: str | None = None,
                     table: str = "positions") -> list[dict[str, Any]]:
    """The latest row of each product (filtered by product or area), then the account's latest TOTAL row."""
    where = []
    if product:
        where.append(f"product = {_literal(product, 'product key')}")
    if area:
        where.append(f"area = {_literal(area, 'area')}")
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    rows = client.query(f"SELECT {_COLUMNS} FROM {table}{filters} LATEST ON ts PARTITION BY product")
    products = sorted((r for r in rows if r["product"] != TOTAL), key=lambda r: str(r["product"]))
    # the account TOTAL comes last whatever the filter: a product's PnL reads best next to the account's
    totals = rows if product == TOTAL or not where else client.query(
        f"SELECT {_COLUMNS} FROM {table} WHERE product = '{TOTAL}' LATEST ON ts PARTITION BY product")
    return products + [r for r in totals if r["product"] == TOTAL]


def position_history(client: QuestDBClient, product: str = TOTAL, *, limit: int = 50,
                     table: str = "positions") -> list[dict[str, Any]]:
    """The latest ``limit`` rows of one product, oldest first."""
    rows = client.query(f"SELECT {_COLUMNS} FROM {table} WHERE product = {_literal(product, 'product key')} "
                        f"ORDER BY ts DESC LIMIT {max(1, int(limit))}")
    return rows[::-1]


def _number(value: Any, digits: int, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{'+' if signed else ''},.{digits}f}"


def _money(value: Any) -> str:
    text = _number(value, 2, signed=True)
    if text == "-" or value == 0:
        return text
    return f"[green]{text}[/]" if value > 0 else f"[red]{text}[/]"


def _when(ts: Any, *, milliseconds: bool) -> str:
    # QuestDB answers TIMESTAMP_NS as 2018-10-28T10:00:00.000000000Z
    text = str(ts or "-")
    if len(text) < 20:
        return text
    return text[:10] + " " + text[11:23 if milliseconds else 19]


def _gate(row: dict[str, Any], exposure: float) -> str:
    if exposure:
        return "[bold red]EXPOSED[/]"  # open at gate closure: settles at the imbalance price
    if row["product"] == TOTAL:
        return "all closed" if row["gate_closed"] else "open"
    return "closed" if row["gate_closed"] else "open"


#: Columns in the order they are given up when the terminal is too narrow (the first column always stays).
_DROP_ORDER = ("avg\nprice", "traded\nMW", "unrealised\nPnL", "realised\nPnL", "state", "mark\nprice",
               "imbalance\nMW")


def positions_table(rows: list[dict[str, Any]], title: str, *, history: bool = False,
                    width: int | None = None) -> Table:
    """The rows as a table, products (or, with ``history``, times and trading states) first; imbalance exposure
    in bold red.

    No cell is ever cut or wrapped: a cut number would be worse than a missing column. When the table is wider
    than ``width``, whole columns are left out in :data:`_DROP_ORDER` (position, PnL and gate stay) and the
    caption names them.
    """
    headers = ["time (UTC)" if history else "product", "position\nMW", "avg\nprice", "mark\nprice",
               "realised\nPnL", "unrealised\nPnL", "PnL", "traded\nMW", "imbalance\nMW", "gate",
               *(["state"] if history else [])]
    body = []
    for row in rows:
        exposure = row.get("imbalance_exposure_mw") or 0.0
        is_total = row["product"] == TOTAL
        if history:
            first = _when(row["ts"], milliseconds=True)
        else:
            first = f"[bold]{TOTAL}[/]" if is_total else str(row["product"])
        body.append([
            first,
            _number(row["position_mw"], 1, signed=True), _number(row["avg_price_eur_per_mwh"], 2),
            _number(row["mark_eur_per_mwh"], 2), _money(row["realised_pnl_eur"]), _money(row["unrealised_pnl_eur"]),
            _money(row["pnl_eur"]), _number(row["traded_mw"], 1),
            # a product's exposure is signed (long: surplus, short: shortfall); the total adds their sizes
            f"[bold red]{_number(exposure, 1, signed=not is_total)}[/]" if exposure else "0.0",
            _gate(row, exposure), *([str(row["trading_state"])] if history else []),
        ])
    keep, left_out = fit_columns(headers, body, width, _DROP_ORDER)
    caption = "MW signed (buy +, sell -), prices EUR/MWh, money EUR"
    if left_out:
        caption += f"; left out to fit: {', '.join(left_out)} (--json has every field)"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in keep:
        numeric = 0 < column <= 8
        table.add_column(headers[column], justify="right" if numeric else "left", no_wrap=True)
    for index, cells in enumerate(body):
        before_total = not history and index == len(rows) - 2 and rows[-1]["product"] == TOTAL
        table.add_row(*[cells[c] for c in keep], end_section=before_total)
    return table


def run(args: argparse.Namespace) -> int:
    from cli.console import console, err_console, load_settings

    settings = load_settings(args)
    table_name = args.table
    if not _NAME.match(table_name):
        err_console.print(f"[red]error[/] table name {table_name!r} is not a plain SQL name")
        return 2
    try:
        if args.area:
            area_rules(args.area)
        if args.product and args.product != TOTAL:
            Product.parse(args.product)
    except ValueError as error:
        err_console.print(f"[red]error[/] {error}")
        return 2
    client = QuestDBClient(settings.questdb, timeout_s=10.0)
    try:
        if not client.table_exists(table_name):
            err_console.print(f"QuestDB at {settings.questdb.http_url} has no {table_name} table yet: "
                              f"{_WHAT_TO_DO} (the stack creates the tables, the flow writes positions).")
            return 1
        if args.history:
            product = args.product or TOTAL
            rows = position_history(client, product, limit=args.limit, table=table_name)
        else:
            rows = latest_positions(client, product=args.product, area=args.area, table=table_name)
    except QuestDBError as error:
        message = str(error).splitlines()[0]
        hint = _WHAT_TO_DO if "unreachable" in message else (error.hint or "read the QuestDB log")
        err_console.print(f"[bold red]error[/] [{error.code}] {message}\n  what to do: {hint}")
        return 1

    if args.json:
        if not rows:
            err_console.print(f"no positions in {table_name} yet: {_WHAT_TO_DO}.")
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return 0
    if not rows:
        wanted = " ".join(f"{k}={v}" for k, v in (("product", args.product), ("area", args.area)) if v)
        console.print(f"no positions{' for ' + wanted if wanted else ''} in {table_name} yet: the execution flow "
                      f"writes them as it trades; {_WHAT_TO_DO}.")
        return 0
    if args.history:
        title = f"{rows[0]['product']}: the latest {len(rows)} rows"
    else:
        scope = f" in {args.area}" if args.area else ""
        count = sum(1 for r in rows if r["product"] != TOTAL)
        newest = max(rows, key=lambda r: str(r["ts"]))  # ISO strings of one format sort as times
        title = (f"positions{scope} as of {_when(newest['ts'], milliseconds=False)} UTC, trading state "
                 f"{newest['trading_state']} ({count} product{'' if count == 1 else 's'}; TOTAL is the account)")
    console.print(positions_table(rows, title, history=args.history, width=console.width))
    exposed = [r for r in rows if r["product"] != TOTAL and (r.get("imbalance_exposure_mw") or 0.0)]
    if exposed and not args.history:
        console.print(f"[bold red]{len(exposed)} product(s) left open at gate closure[/]: their position settles "
                      "at the imbalance price.")
    return 0
