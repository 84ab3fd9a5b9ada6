"""The system under test: which processes a load test starts and what truth their orders are counted against.

A load test drives whatever runs between the raw topic and the venue; everything else (the open-loop sender,
the observer, the venue's request log, the counts and latencies) is the same for every system. Three:

* ``TRADING``: the trading flow (raw message -> order in one dataflow) and the store flow beside it, the
  system ``wattflow run`` starts and ``wattflow loadtest`` measures;
* ``CHAIN``: before the trading flow, three flows chained by Kafka (ingest -> signals -> execution); its
  features follow event time, not log order;
* ``HandWrittenLoop``: the floor of one Kafka hop plus HTTP (``loadtest.baseline``): no features, models,
  risk, storage or recovery; its orders follow its own cadence rule, and it stores nothing.

Each system's orders are published on the run's orders topic with ``signal_ts_ns`` (the event time of the
trade behind the order), ``decided_wall_ns`` and ``answered_wall_ns``, which is all the observer reads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadtest.load import Load
from loadtest.processes import Child, start_child
from loadtest.reference import ExpectedOrder, expected_orders


class System(Protocol):
    """What ``LoadTest`` needs from a system under test."""

    @property
    def name(self) -> str: ...

    @property
    def stores(self) -> bool:
        """Does it store the raw events in QuestDB (else nothing is expected stored)?"""
        ...

    def start(self, env: dict[str, str], logs: Path) -> list[Child]:
        """Start its processes (settings in ``env``: WATTFLOW_* variables); return them to be stopped."""
        ...

    def expected_orders(self, load: Load, env: dict[str, str]) -> dict[str, ExpectedOrder]:
        """Client order id -> (product, trade event time) of every order it must send for ``load`` (all it
        was sent, in send order)."""
        ...


@dataclass(frozen=True)
class Flows:
    """wattflow's flows, each its own process in tail mode, one worker, no recovery: (flow, batch size)."""

    name: str
    flows: tuple[tuple[str, int], ...]
    #: Features in log order (the trading flow) or event time (the signals flow of the chain).
    in_log_order: bool
    stores: bool = True

    def start(self, env: dict[str, str], logs: Path) -> list[Child]:
        children = []
        for flow, batch in self.flows:
            command = [sys.executable, "-m", "bytewax.run",
                       f"flows.{flow}:get_flow(tail=True, batch_size={batch})", "-w", "1", "-s", "2"]
            children.append(start_child(f"{flow} flow", command, env, logs))
        return children

    def expected_orders(self, load: Load, env: dict[str, str]) -> dict[str, ExpectedOrder]:
        return expected_orders(load, env, in_log_order=self.in_log_order)


#: The hot path in one dataflow, the store path beside it.
TRADING = Flows("trading flow + store flow", (("trading", 5_000), ("store", 20_000)), in_log_order=True)
#: Before the trading flow: three flows chained by Kafka. Signals read 2,000 per poll: with a backlog, 20,000
#: make one product's columnar features message larger than the broker's 1 MB limit.
CHAIN = Flows("3 flows chained by Kafka", (("ingest", 20_000), ("signals", 2_000), ("execution", 5_000)),
              in_log_order=False)


@dataclass(frozen=True)
class HandWrittenLoop:
    """``loadtest.baseline`` in its own process: poll the raw topic, an order per trade at the engine's
    cadence (``WATTFLOW_EXECUTION_ORDER_TTL_S`` of market time per product), POST it over wattflow's HTTP
    client."""

    name: str = "hand-written one-hop loop"
    stores: bool = False

    def start(self, env: dict[str, str], logs: Path) -> list[Child]:
        return [start_child("baseline loop", [sys.executable, "-m", "loadtest.baseline"], env, logs)]

    def expected_orders(self, load: Load, env: dict[str, str]) -> dict[str, ExpectedOrder]:
        from loadtest.baseline import expected_orders as expected

        return expected(load, float(env.get("WATTFLOW_EXECUTION_ORDER_TTL_S", "300")))


SYSTEMS: dict[str, System] = {"trading": TRADING, "chain": CHAIN, "baseline": HandWrittenLoop()}
