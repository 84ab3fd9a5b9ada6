"""Tick to order on the box, for each topology: a thin use of ``wattflow loadtest`` (the package ``loadtest``).

Everything that measures is the load test's: the open-loop sender (message i due at ``start + i / rate``,
latency counted from that intended time, the sender's own delay reported), the paper venue in its own process
and its request log, the system's processes, the reference (the same pure operators run offline over what
was sent give every client order id the system must send), the keyed counts and the per-stage HdrHistogram
latencies. **Tick to order** = the time the order's first POST reached the venue (its own log) minus the
intended send time of the trade that caused it; an expected order that never arrived counts as infinitely
late, never dropped. What this module adds is the benchmark's own market and its variants:

* **the market**: products in turn, each alternating a trade and a level-0 book update (half trades), prices
  on a mean-reverting walk around 50 EUR/MWh so that the models take positions, event times advancing with
  the schedule (market time = wall time within a phase), the same products in every phase (so each phase's
  truth is computed over everything sent before it: ``Options.reference_over_history``);
* **the variants** (``loadtest.system``): the trading flow with the store flow beside it, with Kafka client
  defaults and tuned for latency; before it, the three flows chained by Kafka (ingest -> signals ->
  execution), tuned; the hand-written one-hop loop (``loadtest.baseline``), the floor of one Kafka hop plus
  HTTP on this box. A ramp first finds the trading flow's maximum sustainable rate by the load test's rule.

    python -m benchmarks.bench_tick_to_order [--quick] [--duration S] [--rates 1000 5000 10000]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from benchmarks.common import console, machine_info, print_table, running_stack, write_results
from loadtest.load import Load
from loadtest.run import LoadTest, Options, Phase, max_sustainable, rule_text
from loadtest.system import CHAIN, TRADING, HandWrittenLoop, System

NS = 1_000_000_000
#: The market day the load is stamped in: 2018-10-28T10:00Z; products delivered from 12:00Z (gate 11:30Z).
T0 = int(datetime(2018, 10, 28, 10, 0, tzinfo=UTC).timestamp()) * NS
#: Market time between two phases (the drain between them is wall time the market does not see).
PHASE_GAP_NS = NS
TICK_TO_ORDER = "tick to order (intended->at venue)"


def product_keys(count: int) -> list[str]:
    """Hourly DE-LU products from 12:00Z on 2018-10-28 (all open at T0 and for the next 90 minutes)."""
    return [f"DE-LU:2018-10-28T{12 + k:02d}:00Z:PT60M" for k in range(count)]


def schedule_ns(rate_per_s: float, count: int) -> NDArray[np.int64]:
    """Intended offsets after the phase's start: message i is due at ``i / rate`` (rounded to the ns)."""
    return np.round(np.arange(count, dtype=np.float64) * (NS / rate_per_s)).astype(np.int64)


@dataclass
class Generator:
    """The benchmark's market, phase after phase, as :class:`loadtest.load.Load`s: event time runs with the
    schedule from ``T0`` and goes on from phase to phase; trade ids and ``seq`` never repeat."""

    products: list[str]
    source: str = "bench"
    seed: int = 11
    next_trade_id: int = 1
    seq: int = 1_000  # below: the day-ahead prices
    made: int = 0  # messages made so far (decides each product's trade/book turn)
    market_ns: int = 0  # event time of the next phase's first message, after T0
    _mid: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._mid = np.full(len(self.products), 50.0)

    def dayahead(self) -> Load:
        """The day-ahead anchor of each product's hour (no signal is made without it), all due at once."""
        n = len(self.products)
        values = [orjson.dumps({"type": "dayahead", "ts_ns": T0 - 3600 * NS, "area": "DE-LU",
                                "delivery_start_ns": T0 + (2 + k) * 3600 * NS, "duration_min": 60,
                                "price_eur_per_mwh": 50.0, "source": self.source, "seq": k}) for k in range(n)]
        return Load(values, [b"DE-LU"] * n, np.zeros(n, np.int64), np.full(n, T0 - 3600 * NS, np.int64),
                    np.full(n, 2, np.int8), np.arange(n, dtype=np.int64), np.full(n, "", dtype=object),
                    np.full(n, -1, np.int64))

    def phase(self, rate_per_s: float, duration_s: float) -> Load:
        n = max(int(rate_per_s * duration_s), 2 * len(self.products))
        offsets = schedule_ns(rate_per_s, n)
        ts = T0 + self.market_ns + offsets
        self.market_ns += int(offsets[-1]) + PHASE_GAP_NS
        p = len(self.products)
        turn = np.arange(self.made, self.made + n)
        product = turn % p
        is_trade = (turn // p) % 2 == 0
        self.made += n
        rng = self._rng
        noise, shock = rng.normal(0.0, 0.6, n).tolist(), rng.normal(0.0, 0.15, n).tolist()
        quantity = (rng.integers(1, 50, n) / 10).tolist()
        mids = self._mid.tolist()
        values: list[bytes] = []
        trade_id = np.full(n, -1, dtype=np.int64)
        seq = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        for i, (k, trade, t, s, round_) in enumerate(zip(product.tolist(), is_trade.tolist(), ts.tolist(),
                                                          seq.tolist(), turn.tolist(), strict=True)):
            mid = mids[k] = mids[k] + 0.05 * (50.0 - mids[k]) + shock[i]
            if trade:
                trade_id[i] = self.next_trade_id
                values.append(orjson.dumps({
                    "type": "trade", "ts_ns": t, "product": self.products[k],
                    "price_eur_per_mwh": round(mid + noise[i], 2), "quantity_mw": quantity[i],
                    "side": "BUY" if noise[i] > 0 else "SELL", "trade_id": self.next_trade_id,
                    "source": self.source, "seq": s}))
                self.next_trade_id += 1
            else:
                buy = (round_ // p // 2) % 2 == 0  # each product's book: bid, ask, bid...
                values.append(orjson.dumps({
                    "type": "book", "ts_ns": t, "product": self.products[k], "side": "BUY" if buy else "SELL",
                    "level": 0, "price_eur_per_mwh": round(mid - 0.3 if buy else mid + 0.3, 2),
                    "quantity_mw": round(quantity[i] * 5 + 5, 1), "source": self.source, "seq": s}))
        self._mid = np.asarray(mids)
        encoded = [key.encode() for key in self.products]
        return Load(values, [encoded[k] for k in product.tolist()], offsets, ts.astype(np.int64),
                    np.where(is_trade, 0, 1).astype(np.int8), seq, np.array(self.products, dtype=object)[product],
                    trade_id)


@dataclass(frozen=True)
class Variant:
    label: str
    tag: str
    system: System
    tuned: bool


def variants(args: argparse.Namespace) -> list[Variant]:
    out = [Variant("trading flow, Kafka defaults", "tradingdef", TRADING, False),
           Variant("trading flow, Kafka tuned", "trading", TRADING, True)]
    if args.chain:
        out.append(Variant("before: 3 flows chained by Kafka, tuned", "chain", CHAIN, True))
    if args.baseline:
        out.append(Variant("baseline: hand-written one-hop loop", "baseline", HandWrittenLoop(), True))
    return out


def options_for(args: argparse.Namespace, tuned: bool) -> Options:
    return Options(duration_s=args.duration, warmup_s=args.warmup_cut_s, tuned=tuned,
                   p99_bound_ms=args.p99_bound_ms, lag_bound_ms=args.lag_bound_ms,
                   flow_env={"WATTFLOW_EXECUTION_ORDER_TTL_S": str(args.order_ttl_s)}, reference_over_history=True)


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """A phase's result without the per-sample series (kept: counts, stage summaries, verdict, mean CPU)."""
    samples = result.get("samples") or []
    names = sorted({name for s in samples for name in s.get("cpu_percent", {})})
    cpu = {name: round(float(np.mean([s["cpu_percent"][name] for s in samples if name in s["cpu_percent"]])), 1)
           for name in names}
    return {**{k: v for k, v in result.items() if k not in ("samples", "intervals_ms")},
            "mean_cpu_percent": cpu}


def run_variant(settings: Any, variant: Variant, args: argparse.Namespace, logs: Path, *,
                ramp: list[float]) -> dict[str, Any]:
    """One variant on its own topics, venue and processes: warm up, ramp (if asked), then each rate."""
    products = product_keys(args.products)
    source = f"t2o{variant.tag}"
    generator = Generator(products, source=source)
    options = options_for(args, variant.tuned)
    phases: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    with LoadTest(settings, options, logs / variant.tag, products=products, clock_ns=T0 + NS, source=source,
                  system=variant.system) as test:
        with console.status(f"{variant.label}: warming up"):
            warm = Load.concat([generator.dayahead(), generator.phase(500, args.warmup_s)])
            test.run_phase(Phase("warm-up", warm, 500.0))
        for rate in ramp:
            with console.status(f"{variant.label}: ramp {rate:,.0f}/s"):
                step = brief(test.run_phase(Phase(f"ramp {rate:,.0f}/s", generator.phase(rate, args.ramp_s), rate,
                                                  ramp=True)))
            steps.append(step)
            console.print(f"  ramp {rate:,.0f}/s: {'held' if step['sustained'] else 'did not hold'} "
                          f"{step['sustained_detail']}")
            if not step["sustained"]:
                break
        for rate in args.rates:
            with console.status(f"{variant.label}: {rate:,.0f}/s for {args.duration:g} s"):
                result = brief(test.run_phase(Phase(f"{rate:,.0f}/s", generator.phase(rate, args.duration), rate)))
            phases.append(result)
            s, c = result["stages_ms"][TICK_TO_ORDER], result["counts"]
            console.print(f"  {result['phase']}: {c['at_venue']:,} of {c['orders_expected']:,} expected orders at "
                          f"the venue, p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms")
    return {"variant": variant.label, "system": variant.system.name, "tuned": variant.tuned, "phases": phases,
            "ramp": steps, "max_sustainable_rate_per_s": max_sustainable(steps) if steps else None,
            "rule": rule_text(options)}


def tables(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows, stage_rows = [], []
    for variant in results:
        for phase in variant["phases"]:
            s, c, st = phase["stages_ms"][TICK_TO_ORDER], phase["counts"], phase["stages_ms"]
            rows.append([variant["variant"], f"{phase['rate_per_s']:,.0f}", c["orders_expected"], c["at_venue"],
                         c["at_venue_unexpected"], s["p50"], s["p99"], s["p99.9"], s["max"],
                         phase["sender_behind_ms"]["p99"]])
            stage_rows.append([variant["variant"], f"{phase['rate_per_s']:,.0f}", st["intended->sent"]["p50"],
                               st["sent->raw topic"]["p50"], st["raw topic->decided"]["p50"],
                               st["raw topic->decided"]["p99"], st["decided->at venue"]["p50"],
                               st["decided->at venue"]["p99"], st["at venue->acked"]["p50"]])
    print_table("tick to order (ms, from the trade's intended send time to its order reaching the venue)",
                ["variant", "rate (messages/s)", "orders expected", "at the venue", "unexpected", "p50", "p99",
                 "p99.9", "max", "sender p99 behind"], rows,
                caption=f"Half trades, half book updates over {args.products} products; {args.duration:g} s per rate "
                f"(the first {args.warmup_cut_s:g} s not counted). Measured by `wattflow loadtest`'s machinery "
                "(loadtest/): expected orders from the same operators run offline over everything sent (fills not "
                "fed back, limits never bind); at the venue: the venue's own request log. An expected order that "
                "never reached the venue counts as infinitely late (inf). Not pinned: 2 cores shared by Kafka, "
                "QuestDB, the venue, the flows and the load generator.")
    print_table("where the time goes: p50 (p99) of each stage per order (ms)",
                ["variant", "rate", "intended->sent", "sent->raw topic", "raw topic->decided", "p99",
                 "decided->at venue", "p99", "at venue->acked"], stage_rows,
                caption="raw topic = the broker's append time (1 ms resolution); decided = `decided_wall_ns` on the "
                "orders topic (the chain: after its ingest and signals flows); at venue = the venue's own log.")
    ramp_rows = [[variant["variant"], f"{r['rate_per_s']:,.0f}", "yes" if r["sustained"] else "no",
                  r["counts"]["at_venue_lost"] + r["counts"]["stored_lost"] + r["counts"]["not_confirmed"],
                  r["stages_ms"][TICK_TO_ORDER]["p99"], r["sustained_detail"].get("trading_lag_last_ms", float("nan")),
                  r["sustained_detail"].get("store_lag_last_ms", float("nan")), r["sender_behind_ms"]["p99"]]
                 for variant in results for r in variant["ramp"]]
    if ramp_rows:
        print_table("maximum sustainable rate: ramp",
                    ["variant", "messages/s", "sustained", "lost", "p99 tick to order", "trading lag, last fifth (ms)",
                     "store lag, last fifth (ms)", "sender p99 behind"], ramp_rows,
                    caption="Rule (the load test's): " + results[0]["rule"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wattflow-t2o-") as scratch, running_stack() as stack:
        for number, variant in enumerate(variants(args)):
            console.rule(variant.label)
            (Path(scratch) / variant.tag).mkdir()
            ramp = args.ramp if number == 0 and args.ramp_first else []
            results.append(run_variant(stack.settings, variant, args, Path(scratch), ramp=ramp))
    tables(results, args)
    notes = [
        "measured with wattflow loadtest's machinery (loadtest/): open-loop sender, the venue's request log, the "
        "offline reference over everything sent, HdrHistogram per stage; this module adds the market and variants",
        "tick to order = the time the order's first POST reached the venue minus the intended send time of the trade "
        "that caused it; an expected order that never arrived counts as infinitely late",
        "the paper venue in its own process, no rate limit; flows in tail mode, 1 worker each, no recovery; no "
        "reports adapter (fills are not fed back, so every decision follows from the raw messages)",
        "each variant has its own topics (LogAppendTime), venue and processes; the stack is shared",
    ]
    write_results("bench_tick_to_order", {k: v for k, v in vars(args).items()}, results, machine=machine, notes=notes,
                  extra={"commit": machine.get("git"), "max_sustainable_rate_per_s":
                         results[0]["max_sustainable_rate_per_s"] if results else None})
    return {"results": results}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_tick_to_order", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 s per rate, a short ramp")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load per rate (default 15)")
    p.add_argument("--rates", nargs="+", type=float, default=[1000.0, 5000.0, 10000.0],
                   help="messages/s to measure, in this order (default 1000 5000 10000)")
    p.add_argument("--ramp", nargs="+", type=float, default=[500, 1000, 2500, 5000, 10000],
                   help="rates tried on the first variant to find its maximum sustainable rate, stopping at the "
                   "first that does not hold")
    p.add_argument("--no-ramp", dest="ramp_first", action="store_false", help="skip the ramp")
    p.add_argument("--ramp-s", type=float, default=6.0, help="seconds per ramp step (default 6)")
    p.add_argument("--products", type=int, default=2, help="products the load spreads over (default 2)")
    p.add_argument("--order-ttl-s", type=float, default=0.02,
                   help="engine order TTL (market time = wall time here): how often a product may trade again")
    p.add_argument("--warmup-s", type=float, default=3.0, help="warm-up load at 500/s before measuring")
    p.add_argument("--warmup-cut-s", type=float, default=1.0, help="seconds at the start of each rate not counted")
    p.add_argument("--p99-bound-ms", type=float, default=1000.0, help="the sustainable rule's p99 bound")
    p.add_argument("--lag-bound-ms", type=float, default=2000.0, help="the sustainable rule's lag bound")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the hand-written loop")
    p.add_argument("--no-chain", dest="chain", action="store_false",
                   help="skip the three-flow chain (the topology before the trading flow)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 8.0)
        args.ramp_s = min(args.ramp_s, 5.0)
        args.warmup_s = min(args.warmup_s, 2.0)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
