"""The demo day's trading in-process (no servers): the engine plans within its limits even when it lags."""

from __future__ import annotations

from pathlib import Path

from cli.demo_day import demo_feed
from cli.engine_day import run_engine_day
from wattflow.settings import Settings


def test_a_lagging_engine_plans_within_its_limits_and_every_order_reaches_the_exchange_once(tmp_path: Path) -> None:
    settings = Settings.load(state_dir=tmp_path)
    _, frame = demo_feed(settings, scale=0.1)
    # An hour of market time per step, partitions taken one after the other, reports a step late: the lag under
    # which the engine, before it planned within its limits, had 301 of 1,218 decisions denied here (24.7%:
    # MAX_TOTAL_POSITION 149, ORDER_RATE_EXCEEDED 152).
    day = run_engine_day(settings, frame, step_s=3600.0)
    print(f"\nin-process demo day at scale 0.1, 3,600 s lag: {day.decisions} decisions, {day.orders} orders, "
          f"denials {day.denials_by_reason}, share {day.denial_share:.2%}")
    assert day.orders > 100
    assert day.denials < 0.01 * day.decisions, day.denials_by_reason
    # Against the exchange's own log, keyed: each order the engine sent arrived once, and nothing else did.
    assert len(day.exchange_order_ids) == len(set(day.exchange_order_ids))
    assert sorted(day.exchange_order_ids) == sorted(day.order_ids)
