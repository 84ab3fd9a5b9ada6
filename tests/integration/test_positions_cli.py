"""`wattflow positions` against the real QuestDB: rows written by ``position_rows``, read back by the command."""

from __future__ import annotations

import argparse
import io
import re
import sys

import orjson
import pytest
from rich.console import Console

import cli.console
from cli import positions as cli_positions
from connectors.questdb.position_rows import position_rows
from connectors.questdb.sink import RetryingWriter
from connectors.questdb.sql import QuestDBClient
from connectors.questdb.tables import TABLES
from operators.positions import Positions
from tests.helpers import count
from wattflow.domain import NS_PER_SECOND
from wattflow.enums import TradingState
from wattflow.positions import TOTAL, PositionRow
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack

HOURLY = "DE-LU:2018-10-28T10:00Z:PT60M"
QUARTER = "DE-LU:2018-10-28T10:15Z:PT15M"
FRENCH = "FR:2018-10-28T11:00Z:PT60M"
T0 = 1_540_720_800_000_000_000
S = NS_PER_SECOND


def positions_ddl(name: str) -> str:
    """wattflow's DDL of the positions table, for a table of another name."""
    ddl = TABLES["positions"]
    assert "EXISTS positions (" in ddl
    return ddl.replace("EXISTS positions (", f"EXISTS {name} (")


class Output:
    """What the command printed (rich on wide consoles, so that no cell wraps)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(cli.console, "console", Console(file=self.out, width=250, highlight=False))
        monkeypatch.setattr(cli.console, "err_console", Console(file=self.err, width=250, highlight=False))
        monkeypatch.setattr(sys, "stdout", self.out)  # --json writes its lines straight to stdout


def positions(monkeypatch: pytest.MonkeyPatch, settings: Settings, *argv: str) -> tuple[int, Output]:
    """Run `wattflow positions ARGV` in this process, with settings from the environment as the CLI reads them."""
    monkeypatch.delenv("WATTFLOW_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("WATTFLOW_QUESTDB_HOST", settings.questdb.host)
    monkeypatch.setenv("WATTFLOW_QUESTDB_HTTP_PORT", str(settings.questdb.http_port))
    parser = argparse.ArgumentParser(prog="wattflow")
    cli_positions.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["positions", *argv])
    output = Output(monkeypatch)
    code = args.func(args)
    return code, output


def trading_day() -> list[PositionRow]:
    """Three products traded over a few events; the hourly one is left long 2 MW at its gate closure."""
    p = Positions()
    written: list[PositionRow] = []
    p.on_fill(HOURLY, 1, 3.0, 50.0, T0)
    written += p.rows(T0, products=[HOURLY])
    p.on_fill(QUARTER, -1, 4.0, -20.0, T0 + 1 * S)  # sold at a negative price
    p.mark(QUARTER, -25.0, T0 + 1 * S)
    written += p.rows(T0 + 1 * S, products=[QUARTER])
    p.on_fill(HOURLY, -1, 1.0, 56.0, T0 + 2 * S)
    p.mark(HOURLY, 55.0, T0 + 2 * S)
    written += p.rows(T0 + 2 * S, products=[HOURLY])
    p.on_fill(FRENCH, 1, 1.0, 30.0, T0 + 3 * S)
    p.on_fill(FRENCH, -1, 1.0, 31.5, T0 + 3 * S)
    written += p.rows(T0 + 3 * S, TradingState.REDUCING, products=[FRENCH])
    closed = p.on_gate_closure(HOURLY, T0 + 4 * S, TradingState.REDUCING)
    assert closed is not None
    written += [closed, p.total(T0 + 4 * S, "REDUCING")]
    return written


@pytest.fixture
def table(settings: Settings, unique: str) -> str:
    """A positions table of this test's own (wattflow's DDL), holding the rows of ``trading_day``."""
    name = f"positions_{unique}"
    client = QuestDBClient(settings.questdb)
    client.execute(positions_ddl(name))
    writer = RetryingWriter(settings.questdb)
    try:
        assert writer.write([position_rows(trading_day(), table=name)]) == 10
    finally:
        writer.close()
    assert count(settings, f"SELECT count() FROM {name}") == 10
    return name


def line_of(text: str, product: str) -> str:
    lines = [line for line in text.splitlines() if f"│ {product} " in line]
    assert len(lines) == 1, text
    return lines[0]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def test_latest_row_per_product_with_the_total_last_and_the_exposure_flagged(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, table: str) -> None:
    code, output = positions(monkeypatch, settings, "--table", table)
    text = output.out.getvalue()
    assert code == 0, output.err.getvalue()
    assert "positions as of 2018-10-28 10:00:04 UTC, trading state REDUCING (3 products; TOTAL is the account)" \
        in text
    rows = [line for line in text.splitlines() if re.search(r"│ (DE-LU:|FR:|TOTAL )", line)]
    assert [next(key for key in (FRENCH, HOURLY, QUARTER, TOTAL) if key in line) for line in rows] == \
        [HOURLY, QUARTER, FRENCH, TOTAL]
    # cells: product, position, avg, mark, realised, unrealised, PnL, traded, imbalance, gate
    # long 2 MW at avg 50 marked 55: 1 MW sold at 56 realised 6, 10 unrealised; left open at gate closure
    assert cells(line_of(text, HOURLY)) == [HOURLY, "+2.0", "50.00", "55.00", "+6.00", "+10.00", "+16.00", "4.0",
                                            "+2.0", "EXPOSED"]
    # short 4 MW sold at -20, marked -25: +5 x 4 MW x 0.25 h
    assert cells(line_of(text, QUARTER)) == [QUARTER, "-4.0", "-20.00", "-25.00", "+0.00", "+5.00", "+5.00", "4.0",
                                             "0.0", "open"]
    # flat: no average; marked at the last fill price (no mid came)
    assert cells(line_of(text, FRENCH)) == [FRENCH, "+0.0", "-", "31.50", "+1.50", "+0.00", "+1.50", "2.0", "0.0",
                                            "open"]
    assert cells(line_of(text, TOTAL)) == [TOTAL, "-2.0", "-", "-", "+7.50", "+15.00", "+22.50", "10.0", "2.0",
                                           "EXPOSED"]
    assert "1 product(s) left open at gate closure" in text


def test_json_rows_and_filters(monkeypatch: pytest.MonkeyPatch, settings: Settings, table: str) -> None:
    code, output = positions(monkeypatch, settings, "--table", table, "--json")
    assert code == 0
    rows = [orjson.loads(line) for line in output.out.getvalue().splitlines()]
    assert [r["product"] for r in rows] == [HOURLY, QUARTER, FRENCH, TOTAL]
    by_product = {r["product"]: r for r in rows}
    assert by_product[HOURLY]["imbalance_exposure_mw"] == 2.0 and by_product[HOURLY]["gate_closed"] is True
    assert by_product[HOURLY]["area"] == "DE-LU" and by_product[TOTAL]["area"] == "ALL"
    assert by_product[FRENCH]["avg_price_eur_per_mwh"] is None  # NaN (flat) is stored as NULL
    assert by_product[FRENCH]["trading_state"] == "REDUCING"
    assert by_product[TOTAL]["pnl_eur"] == pytest.approx(22.5)
    assert by_product[TOTAL]["imbalance_exposure_mw"] == 2.0 and by_product[TOTAL]["gate_closed"] is False

    code, output = positions(monkeypatch, settings, "--table", table, "--json", "--area", "FR")
    assert code == 0
    assert [orjson.loads(line)["product"] for line in output.out.getvalue().splitlines()] == [FRENCH, TOTAL]

    code, output = positions(monkeypatch, settings, "--table", table, "--json", "--product", QUARTER)
    assert code == 0
    only = [orjson.loads(line) for line in output.out.getvalue().splitlines()]
    assert [r["product"] for r in only] == [QUARTER, TOTAL] and only[0]["position_mw"] == -4.0


def test_history_shows_one_product_over_time(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                             table: str) -> None:
    code, output = positions(monkeypatch, settings, "--table", table, "--history", "--json")
    assert code == 0
    totals = [orjson.loads(line) for line in output.out.getvalue().splitlines()]
    assert [r["product"] for r in totals] == [TOTAL] * 5  # the default: the account, oldest first
    assert [r["traded_mw"] for r in totals] == [3.0, 7.0, 8.0, 10.0, 10.0]
    assert [r["imbalance_exposure_mw"] for r in totals] == [0.0, 0.0, 0.0, 0.0, 2.0]

    code, output = positions(monkeypatch, settings, "--table", table, "--history", "--json", "--limit", "2")
    assert [orjson.loads(line)["traded_mw"] for line in output.out.getvalue().splitlines()] == [10.0, 10.0]

    code, output = positions(monkeypatch, settings, "--table", table, "--history", "--product", HOURLY)
    text = output.out.getvalue()
    assert code == 0
    assert f"{HOURLY}: the latest 3 rows" in text
    assert [cells(line) for line in text.splitlines() if "│ 2018-10-28 10:00:0" in line] == [
        ["2018-10-28 10:00:00.000", "+3.0", "50.00", "50.00", "+0.00", "+0.00", "+0.00", "3.0", "0.0", "open",
         "ACTIVE"],
        ["2018-10-28 10:00:02.000", "+2.0", "50.00", "55.00", "+6.00", "+10.00", "+16.00", "4.0", "0.0", "open",
         "ACTIVE"],
        ["2018-10-28 10:00:04.000", "+2.0", "50.00", "55.00", "+6.00", "+10.00", "+16.00", "4.0", "+2.0", "EXPOSED",
         "REDUCING"],
    ]


def test_an_empty_or_missing_table_and_an_unreachable_questdb_say_what_to_do(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, unique: str) -> None:
    empty = f"positions_empty_{unique}"
    QuestDBClient(settings.questdb).execute(positions_ddl(empty))
    code, output = positions(monkeypatch, settings, "--table", empty)
    assert code == 0
    assert "no positions in" in output.out.getvalue()
    assert "wattflow run execution" in output.out.getvalue()

    code, output = positions(monkeypatch, settings, "--table", f"positions_missing_{unique}")
    assert code == 1
    assert "has no positions_missing_" in output.err.getvalue() and "wattflow stack up" in output.err.getvalue()

    nowhere = settings.model_copy(update={"questdb": settings.questdb.model_copy(update={"http_port": free_port()})})
    code, output = positions(monkeypatch, nowhere, "--table", empty)
    assert code == 1
    err = output.err.getvalue()
    assert "unreachable" in err and "wattflow stack up" in err and "wattflow run execution" in err
