"""The venue client's timings (``connectors/venue/client.py``) against the real paper venue, with baselines.

    python -m benchmarks.bench_venue_client                  # 2,000 orders per variant
    python -m benchmarks.bench_venue_client --orders 5000

The timings the functional tests (tests/integration/test_venue_client.py) no longer assert:

* a submit over the client's keep-alive pool, one after the other, and from 4 threads at once; baseline in the
  same run: the same orders each over a new TCP connection (``urllib``, what a client without a pool pays);
* a submit refused while the circuit breaker is open (nothing sent: the venue's request count must not move);
* a 429 waited out: the time from the call to its answer when the venue's rate limit says ``Retry-After: 1``.

The venue runs in its own process (``python -m paper.server``), rate limit off except for the 429 variant (a
venue of its own in this process, 3 requests per second). Counted, not assumed: every order submitted is at the
venue once (its own books, ``GET /orders``, keyed by client order id), and the venue saw no request while the
breaker was open. Percentiles need samples: p99 is quoted from 200 on, p95 from 40 (else "-").
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench_tick_to_order import ADMIN_KEY, API_KEY, T0, start_venue
from benchmarks.common import console, machine_info, percentile, print_table, write_results

PRODUCT = "DE-LU:2018-10-28T12:00Z:PT60M"
MIN_SAMPLES = {50: 10, 95: 40, 99: 200}


def quoted(samples: list[float], q: int) -> float:
    return percentile(samples, q) * 1000 if len(samples) >= MIN_SAMPLES[q] else float("nan")


def row(name: str, samples: list[float], wall_s: float | None = None) -> list[Any]:
    rate = len(samples) / wall_s if wall_s else float("nan")
    return [name, len(samples), quoted(samples, 50), quoted(samples, 95), quoted(samples, 99),
            max(samples, default=float("nan")) * 1000, rate]


def venue_orders(url: str) -> Counter[str]:
    """Client order id -> how many orders the venue holds under it (its own books)."""
    request = urllib.request.Request(f"{url}/orders", headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return Counter(order["client_order_id"] for order in orjson.loads(answer.read()))


def request_count(url: str) -> int:
    request = urllib.request.Request(f"{url}/admin/requests", headers={"X-API-Key": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return len(orjson.loads(answer.read()))


def urllib_submit(url: str, payload: dict[str, Any]) -> None:
    """The baseline: one order over a new TCP connection."""
    request = urllib.request.Request(f"{url}/orders", data=orjson.dumps(payload), method="POST",
                                     headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.feeds.files import write_feed
    from connectors.venue.client import CircuitBreaker, OrderRequest, SubmitStatus, VenueClient
    from paper.handmade import BookEvent, handmade_feed
    from paper.server import serve
    from wattflow.domain import Side
    from wattflow.stack.process import free_port

    machine = machine_info()
    logs = Path(tempfile.mkdtemp(prefix="wattflow-bench-venue-client-"))
    n = args.orders

    def order(cid: str) -> OrderRequest:  # rests below the 49 bid: never matches
        return OrderRequest(cid, PRODUCT, "BUY", 40.0, 0.1)

    venue, port = start_venue(logs, [PRODUCT])
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    rows = []
    try:
        client = VenueClient(url, API_KEY, timeout_s=5.0, breaker=CircuitBreaker(failure_threshold=10_000))
        # Warm-up (connection, first-request costs), not counted.
        for i in range(20):
            client.submit(order(f"warm-{i}"))
        with console.status("keep-alive, sequential..."):
            sequential: list[float] = []
            started = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                outcome = client.submit(order(f"seq-{i}"))
                sequential.append(time.perf_counter() - t)
                assert outcome.status is SubmitStatus.ACKED, outcome
            sequential_s = time.perf_counter() - started
        with console.status("baseline: a new connection per order..."):
            fresh: list[float] = []
            started = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                urllib_submit(url, order(f"new-{i}").payload())
                fresh.append(time.perf_counter() - t)
            fresh_s = time.perf_counter() - started
        with console.status("keep-alive, 4 threads..."):
            threaded: list[float] = []
            lock = threading.Lock()

            def trader(t_id: int) -> None:
                mine = []
                for i in range(n // 4):
                    t = time.perf_counter()
                    outcome = client.submit(order(f"thr-{t_id}-{i}"))
                    mine.append(time.perf_counter() - t)
                    assert outcome.status is SubmitStatus.ACKED, outcome
                with lock:
                    threaded.extend(mine)

            threads = [threading.Thread(target=trader, args=(t_id,)) for t_id in range(4)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            threaded_s = time.perf_counter() - started
        expected = Counter([f"warm-{i}" for i in range(20)] + [f"seq-{i}" for i in range(n)]
                           + [f"new-{i}" for i in range(n)]
                           + [f"thr-{t}-{i}" for t in range(4) for i in range(n // 4)])
        held = venue_orders(url)
        missing, extra = expected - held, held - expected
        results["orders"] = {"expected": sum(expected.values()), "at_venue": sum(held.values()),
                             "missing": len(missing), "extra": len(extra)}

        with console.status("breaker open..."):
            breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=3600.0)
            breaker.record_failure("bench: opened by hand")
            blocked_client = VenueClient(url, API_KEY, timeout_s=5.0, breaker=breaker)
            before = request_count(url)
            blocked: list[float] = []
            for i in range(n):
                t = time.perf_counter()
                outcome = blocked_client.submit(order(f"blk-{i}"))
                blocked.append(time.perf_counter() - t)
                assert outcome.status is SubmitStatus.BLOCKED, outcome
            sent_while_open = request_count(url) - before
        results["blocked"] = {"calls": n, "requests_sent_while_open": sent_while_open}
        rows += [row("submit, keep-alive pool, sequential", sequential, sequential_s),
                 row("baseline: submit over a new connection (urllib)", fresh, fresh_s),
                 row("submit, keep-alive pool, 4 threads", threaded, threaded_s),
                 row("submit refused, breaker open (nothing sent)", blocked)]
    finally:
        venue.stop()

    with console.status("429 waited out..."):
        feed = write_feed(handmade_feed([BookEvent(T0, PRODUCT, Side.BUY, 0, 49.5, 2.0)]), logs / "feed.jsonl")
        limited = serve(feed, free_port(), API_KEY, rate_limit_per_s=3, background=True)
        waits: list[float] = []
        rate_limited = 0
        try:
            c = VenueClient(limited.url, API_KEY, timeout_s=2.0, max_attempts=3, backoff_s=0.01, max_backoff_s=1.5)
            for _ in range(args.retry_after_samples):
                time.sleep(1.1)  # an empty window
                for _ in range(3):
                    c.open_orders()
                t = time.perf_counter()
                c.open_orders()  # the 4th within the second: 429, Retry-After 1
                waits.append(time.perf_counter() - t)
            rate_limited = c.stats.rate_limited
        finally:
            limited.stop()
    rows.append(row("429 Retry-After: 1 waited out (call to answer)", waits))
    results["retry_after"] = {"samples": len(waits), "rate_limited": rate_limited}
    print_table(f"venue client against the paper venue ({n:,} orders per variant; ms, rate per s)",
                ["variant", "samples", "p50", "p95", "p99", "max", "per s"], rows,
                caption=f"orders at the venue {results['orders']['at_venue']:,} of {results['orders']['expected']:,} "
                        f"(missing {results['orders']['missing']}, extra {results['orders']['extra']}); requests "
                        f"while the breaker was open {results['blocked']['requests_sent_while_open']}; 429s "
                        f"{rate_limited} for {len(waits)} calls; p99 from >= 200 samples, p95 from >= 40")
    results["table"] = [dict(zip(["variant", "samples", "p50_ms", "p95_ms", "p99_ms", "max_ms", "per_s"], r,
                                 strict=True)) for r in rows]
    write_results("bench_venue_client", vars(args), results, machine=machine,
                  notes=["the venue (its own process) and this client share the box's cores",
                         "rate limit off except for the 429 variant (a venue in this process at 3 requests/s)"])
    if results["orders"]["missing"] or results["orders"]["extra"] or results["blocked"]["requests_sent_while_open"]:
        raise SystemExit(f"counts off: {results['orders']}, {results['blocked']}")
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_venue_client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=2000, help="orders per variant (default 2,000)")
    p.add_argument("--retry-after-samples", type=int, default=10,
                   help="429s waited out (about 2 s each; default 10, so only p50 and max are quoted)")
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
