"""From a signal to a limit order sized on the market's thin liquidity, priced by urgency (pure logic).

For one product, given the latest signal of a model, the features at that moment and the current position:

* **delta** = target position - position (MW); nothing below ``min_clip_mw``.
* **size** = ``min(|delta|, depth_share x depth near the touch on the side the order would take,
  volume_share x volume traded in the feature window, max_clip_mw)``, rounded *down* to the 0.1 MW step: a
  large intent is split into clips over time, and no clip asks more of the book than a set share of it.
* **urgency** ``u = clip(1 - minutes_to_gate_closure / urgency_window_min, 0, 1)``: 0 far from gate closure,
  rising linearly to 1 at closure.
* **price**: from passive (our side's best) to aggressive (the other side's best) as urgency rises, a buy at
  ``bid + u x (ask - bid)`` rounded down to the 0.01 EUR/MWh tick, a sell at ``ask - u x (ask - bid)``
  rounded up; with one side of the book empty, the other side's best (joined passively); with both empty,
  no order. Prices may be negative.
* **time in force**: IOC once ``u >= ioc_urgency``, GTC before; an IOC reaches ``ioc_cross_eur_per_mwh``
  further (the book it was priced on is a moment old when it arrives); a GTC clip larger than
  ``iceberg_display_mw`` (when set) rests as an iceberg showing that much.
* **no order** at or after the product's (area) gate closure: ``minutes_to_gate_closure <= 0``.
* **estimated slippage** against the arrival mid, EUR/MWh (positive = a cost): ``price - mid`` for a buy,
  ``mid - price`` for a sell.
* **client order id**: deterministic, derived from the signal (product, model, event time, trade id), so a
  replayed or retried signal yields the same id and the venue recognises it instead of trading twice.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from wattflow.domain import PRICE_TICK_EUR_PER_MWH, QUANTITY_STEP_MW, Side
from wattflow.enums import TimeInForce
from wattflow.features import FeatureBatch
from wattflow.orders import OrderPlan
from wattflow.settings import execution_default
from wattflow.signals import MarketSnapshot, SignalBatch


@dataclass(frozen=True, slots=True)
class SizingSettings:
    """How sizing turns a target into a clip; defaults are ``ExecutionSettings``' (the one source)."""

    depth_share: float = execution_default("depth_share")
    volume_share: float = execution_default("volume_share")
    max_clip_mw: float = execution_default("max_clip_mw")
    min_clip_mw: float = QUANTITY_STEP_MW
    urgency_window_min: float = execution_default("urgency_window_min")
    ioc_urgency: float = execution_default("ioc_urgency")
    #: How far an urgent (IOC) order may reach beyond the other side's best, EUR/MWh: the book it was priced
    #: on is a moment old by the time the order arrives.
    ioc_cross_eur_per_mwh: float = execution_default("ioc_cross_eur_per_mwh")
    #: A resting (GTC) order larger than this shows only this much (an iceberg); 0: never.
    iceberg_display_mw: float = execution_default("iceberg_display_mw")


def client_order_id(product: str, model: str, ts_ns: int, trade_id: int) -> str:
    """A stable id for the order a signal causes (the same signal always gives the same id)."""
    digest = hashlib.blake2b(f"{product}|{model}|{ts_ns}|{trade_id}".encode(), digest_size=10).hexdigest()
    return f"wf-{digest}"


def _steps_down(quantity_mw: float) -> float:
    return math.floor(quantity_mw / QUANTITY_STEP_MW + 1e-9) * QUANTITY_STEP_MW


def _tick(price: float, side: Side) -> float:
    ticks = price / PRICE_TICK_EUR_PER_MWH
    rounded = math.floor(ticks + 1e-9) if side is Side.BUY else math.ceil(ticks - 1e-9)
    return round(rounded * PRICE_TICK_EUR_PER_MWH, 2)


def _finite_or_zero(value: float) -> float:
    """Scalar ``nan_to_num`` for unknown depth or volume: nothing known, nothing to take (plain floats: this runs
    for every signal row)."""
    return value if math.isfinite(value) else 0.0


def urgency(minutes_to_gate_closure: float, window_min: float) -> float:
    return min(max(1.0 - minutes_to_gate_closure / window_min, 0.0), 1.0)


def plan_order(signals: SignalBatch, features: FeatureBatch, position_mw: float,
               settings: SizingSettings | None = None) -> OrderPlan | None:
    """The order for the latest signal of ``signals`` (one product and model), or None if there is none to
    place. ``features`` must be the same product's features at the same trades."""
    if not len(signals):
        return None
    row = len(signals) - 1
    return plan_from_market(signals.product, signals.model, int(signals.ts_ns[row]), int(signals.trade_id[row]),
                            float(signals.target_position_mw[row]), market=MarketSnapshot.of(features, row),
                            position_mw=position_mw, settings=settings)


def plan_from_market(product: str, model: str, ts_ns: int, trade_id: int, target_position_mw: float, *,
                     market: MarketSnapshot, position_mw: float,
                     settings: SizingSettings | None = None) -> OrderPlan | None:
    """The order that moves ``position_mw`` towards ``target_position_mw`` given ``market``, or None."""
    settings = settings or SizingSettings()
    if not market.minutes_to_gate_closure > 0:
        return None
    delta_mw = target_position_mw - position_mw
    if abs(delta_mw) < settings.min_clip_mw:
        return None
    side = Side.BUY if delta_mw > 0 else Side.SELL
    bid, ask = market.best_bid_eur_per_mwh, market.best_ask_eur_per_mwh
    taken_depth = market.ask_depth_near_mid_mw if side is Side.BUY else market.bid_depth_near_mid_mw
    limits = [abs(delta_mw), settings.max_clip_mw,
              settings.depth_share * _finite_or_zero(taken_depth),
              settings.volume_share * _finite_or_zero(market.volume_mw)]
    quantity = _steps_down(min(limits))
    if quantity < settings.min_clip_mw:
        return None
    u = urgency(market.minutes_to_gate_closure, settings.urgency_window_min)
    if math.isfinite(bid) and math.isfinite(ask):
        raw = bid + u * (ask - bid) if side is Side.BUY else ask - u * (ask - bid)
    elif math.isfinite(bid) or math.isfinite(ask):
        raw = bid if math.isfinite(bid) else ask
    else:
        return None
    tif = TimeInForce.IOC if u >= settings.ioc_urgency else TimeInForce.GTC
    if tif is TimeInForce.IOC and math.isfinite(bid) and math.isfinite(ask):
        raw += settings.ioc_cross_eur_per_mwh * side
    price = _tick(raw, side)
    mid = market.mid_eur_per_mwh if math.isfinite(market.mid_eur_per_mwh) else raw
    slippage = price - mid if side is Side.BUY else mid - price
    display = settings.iceberg_display_mw
    iceberg = tif is TimeInForce.GTC and 0 < display < quantity - 1e-9
    return OrderPlan(
        client_order_id(product, model, ts_ns, trade_id), product, model, side,
        price, round(quantity, 1), tif, u, mid, slippage, ts_ns, _steps_down(display) if iceberg else None,
    )
