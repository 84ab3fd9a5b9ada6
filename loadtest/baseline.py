"""The hand-written one-hop loop: the floor a load test compares wattflow's order path with.

``python -m loadtest.baseline`` (settings from WATTFLOW_* variables, as the flows): consume the raw topic,
``orjson.loads`` each message, and on a trade whose product last ordered at least ``order_ttl_s`` of market
time ago cancel that order and POST a new one (the opposite side, 0.5 EUR inside the trade's price) with
wattflow's own HTTP client; publish a record per order on the orders topic as the flows do (``product``,
``signal_ts_ns``, ``decided_wall_ns``, ``answered_wall_ns``). One thread, one request at a time, no features,
models, risk, storage or recovery. Its client order ids come from the product and the trade's event time, so
:func:`expected_orders` knows them whatever order the partitions are read in.
"""

from __future__ import annotations

import hashlib
import signal
from typing import Any

import orjson

from loadtest.load import Load
from loadtest.reference import ExpectedOrder

NS = 1_000_000_000
TRADE = 0


def order_id(product: str, ts_ns: int) -> str:
    return "base-" + hashlib.blake2b(f"{product}|{ts_ns}".encode(), digest_size=8).hexdigest()


def expected_orders(load: Load, ttl_s: float) -> dict[str, ExpectedOrder]:
    """The loop's cadence offline: a product orders again at its first trade ``ttl_s`` after its last order."""
    ttl_ns = int(ttl_s * NS)
    last: dict[str, int] = {}
    out: dict[str, ExpectedOrder] = {}
    for kind, product, ts in zip(load.kind.tolist(), load.product.tolist(), load.ts_ns.tolist(), strict=True):
        if kind != TRADE:
            continue
        if product in last and ts - last[product] < ttl_ns:
            continue
        last[product] = ts
        out[order_id(product, ts)] = ExpectedOrder(product, ts)
    return out


def main() -> None:
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from connectors.kafka.admin import topic_partitions
    from connectors.venue.client import OrderRequest, VenueClient
    from wattflow.enums import TimeInForce
    from wattflow.settings import Settings

    settings = Settings.load()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    kafka, topics = settings.kafka.client_config(), settings.topics
    consumer = Consumer({**kafka, "group.id": "loadtest-baseline", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 1, "fetch.min.bytes": 1})
    consumer.assign([TopicPartition(topics.raw, p, OFFSET_BEGINNING)
                     for p in range(topic_partitions(settings.kafka, topics.raw))])
    producer = Producer({**kafka, "linger.ms": 5})
    api_key = settings.venue.api_key.get_secret_value() if settings.venue.api_key else ""
    client = VenueClient(settings.venue.url, api_key, timeout_s=settings.venue.timeout_s)
    ttl_ns = int(settings.execution.order_ttl_s * NS)
    last: dict[str, tuple[int, str]] = {}
    print("baseline loop running", flush=True)
    while not stopping:
        message = consumer.poll(0.1)
        if message is None or message.error() is not None:
            continue
        try:
            event = orjson.loads(message.value() or b"{}")
            if event.get("type") != "trade":
                continue
            product, ts = event["product"], int(event["ts_ns"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            continue  # a malformed message: the loop has no dead letters
        previous = last.get(product)
        if previous is not None and ts - previous[0] < ttl_ns:
            continue
        decided = time.time_ns()
        if previous is not None:
            client.cancel(previous[1])
        cid = order_id(product, ts)
        side = "BUY" if event["side"] == "SELL" else "SELL"
        price = round(event["price_eur_per_mwh"] - (0.5 if side == "BUY" else -0.5), 2)
        outcome = client.submit(OrderRequest(cid, product, side, price, 1.0, TimeInForce.GTC))
        answered = time.time_ns()
        last[product] = (ts, cid)
        producer.produce(topics.orders, orjson.dumps({
            "client_order_id": cid, "action": "SUBMIT", "status": outcome.status.value, "product": product,
            "signal_ts_ns": ts, "decided_wall_ns": decided, "answered_wall_ns": answered}))
        producer.poll(0)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
