"""The paper venue over real HTTP: keys, rate limit, idempotent submit, faults, clock, cancel-all."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.feeds.files import write_feed
from paper.handmade import BookEvent, TradeEvent, handmade_feed
from paper.server import VenueServer, serve
from wattflow.domain import NS_PER_SECOND, Side, datetime_to_ns
from wattflow.stack.process import free_port

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
T0 = datetime_to_ns(datetime(2018, 10, 28, 10, 0, tzinfo=UTC))
API, ADMIN = "trader-key", "admin-key"


def feed_events() -> list[BookEvent | TradeEvent]:
    return [BookEvent(T0, KEY, Side.BUY, 0, 49.5, 2.0), BookEvent(T0, KEY, Side.SELL, 0, 50.0, 1.5),
            BookEvent(T0, KEY, Side.SELL, 1, 50.5, 2.0), TradeEvent(T0 + 60 * NS_PER_SECOND, KEY, Side.SELL, 45.0, 3.0)]


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueServer]:
    path = write_feed(handmade_feed(feed_events()), tmp_path / "feed.jsonl")
    server = serve(path, free_port(), API, admin_key=ADMIN, rate_limit_per_s=1000, background=True)
    call(server, "POST", "/admin/clock", {"ts_ns": T0}, key=ADMIN)
    yield server
    server.stop()


def call(server: VenueServer, method: str, path: str, body: Any = None, *, key: str | None = API,
         timeout: float = 5.0) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if key is not None:
        request.add_header("X-API-Key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, orjson.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read()), dict(error.headers)


def order(cid: str, price: float = 49.0, qty: float = 1.0, tif: str = "GTC", side: str = "BUY") -> dict[str, Any]:
    return {"client_order_id": cid, "product": KEY, "side": side, "price_eur_per_mwh": price,
            "quantity_mw": qty, "tif": tif}


def test_api_key_is_required(venue: VenueServer) -> None:
    assert call(venue, "GET", "/health", key=None)[0] == 200
    assert call(venue, "GET", "/orders", key=None)[0] == 401
    assert call(venue, "GET", "/orders", key="wrong")[0] == 401
    assert call(venue, "GET", "/orders")[0] == 200
    assert call(venue, "POST", "/admin/faults", {"mode": "down"})[0] == 403  # trading key is no admin key


def test_idempotent_submit_fills_and_cancel_all(venue: VenueServer) -> None:
    status, first, _ = call(venue, "POST", "/orders", order("o1", price=50.0, qty=1.0, tif="IOC"))
    assert status == 201 and first["status"] == "FILLED"
    status, again, _ = call(venue, "POST", "/orders", order("o1", price=50.0, qty=1.0, tif="IOC"))
    assert status == 200 and again["replayed"] and again["order_id"] == first["order_id"]
    assert call(venue, "POST", "/orders", order("o1", price=50.5))[0] == 409
    assert call(venue, "POST", "/orders", order("bad", price=49.001))[1]["reason"] == "INVALID_PRICE_TICK"
    assert call(venue, "POST", "/orders", {"product": KEY})[0] == 400
    fills = call(venue, "GET", "/fills")[1]
    assert [(f["price_eur_per_mwh"], f["quantity_mw"]) for f in fills] == [(50.0, 1.0)]
    for cid in ("r1", "r2", "r3"):
        assert call(venue, "POST", "/orders", order(cid, price=40.0))[0] == 201
    assert call(venue, "DELETE", "/orders/r1")[1]["status"] == "CANCELLED"
    assert call(venue, "DELETE", "/orders/unknown")[0] == 404
    assert {o["client_order_id"] for o in call(venue, "GET", "/orders")[1]} == {"r2", "r3"}
    status, cancelled, _ = call(venue, "DELETE", "/orders")
    assert status == 200 and {o["client_order_id"] for o in cancelled["cancelled"]} == {"r2", "r3"}
    assert call(venue, "GET", "/orders")[1] == []


def test_admin_clock_drives_passive_fills(venue: VenueServer) -> None:
    call(venue, "POST", "/orders", order("p", price=46.0, qty=5.0))
    clock = call(venue, "POST", "/admin/clock", {"ts_ns": T0 + 61 * NS_PER_SECOND}, key=ADMIN)[1]
    assert clock["ts_ns"] == T0 + 61 * NS_PER_SECOND
    state = call(venue, "GET", "/orders/p")[1]
    assert state["status"] == "PARTIALLY_FILLED" and state["filled_quantity_mw"] == 3.0


def test_iceberg_over_http_is_read_back_and_fills_a_clip_per_trade(venue: VenueServer) -> None:
    from connectors.venue.client import OrderRequest

    body = OrderRequest("ice", KEY, "BUY", 46.0, 5.0, display_quantity_mw=1.0).payload()
    assert OrderRequest("plain", KEY, "BUY", 46.0, 5.0).payload().keys() == order("plain").keys()
    status, created, _ = call(venue, "POST", "/orders", body)
    assert status == 201 and created["status"] == "NEW" and created["display_quantity_mw"] == 1.0
    assert call(venue, "POST", "/orders", body)[1]["replayed"]
    assert call(venue, "POST", "/orders", {**body, "display_quantity_mw": 2.0})[0] == 409
    assert call(venue, "POST", "/orders", {**body, "display_quantity_mw": None})[0] == 409
    status, ioc, _ = call(venue, "POST", "/orders", {**body, "client_order_id": "ioc", "tif": "IOC"})
    assert status == 422 and ioc["reason"] == "DISPLAY_QUANTITY_NOT_GTC"
    status, step, _ = call(venue, "POST", "/orders", {**body, "client_order_id": "s", "display_quantity_mw": 0.15})
    assert status == 422 and step["reason"] == "INVALID_DISPLAY_QUANTITY_STEP"
    assert call(venue, "POST", "/orders", order("p", price=40.0))[1]["display_quantity_mw"] is None
    listed = {o["client_order_id"]: o["display_quantity_mw"] for o in call(venue, "GET", "/orders")[1]}
    assert listed == {"ice": 1.0, "p": None}
    # A seller trades 3.0 at 45.00, through our 46.00: the iceberg fills its 1.0 clip, not 3.0.
    call(venue, "POST", "/admin/clock", {"ts_ns": T0 + 61 * NS_PER_SECOND}, key=ADMIN)
    state = call(venue, "GET", "/orders/ice")[1]
    assert state["status"] == "PARTIALLY_FILLED" and state["filled_quantity_mw"] == 1.0
    assert state["display_quantity_mw"] == 1.0 and state["leaves_quantity_mw"] == 4.0


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    server = VenueServer(handmade_feed(feed_events()), port=free_port(), api_keys=[API, "other"],
                         rate_limit_per_s=5).start()
    try:
        statuses = [call(server, "GET", "/orders")[0] for _ in range(8)]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        status, body, headers = call(server, "GET", "/orders")
        assert status == 429 and int(headers["Retry-After"]) >= 1 and "error" in body
        assert call(server, "GET", "/orders", key="other")[0] == 200  # per key
    finally:
        server.stop()


def set_fault(server: VenueServer, **fault: Any) -> None:
    assert call(server, "POST", "/admin/faults", fault, key=ADMIN)[0] == 200


def test_fault_modes_seen_by_the_client(venue: VenueServer) -> None:
    set_fault(venue, mode="down")
    assert call(venue, "GET", "/orders")[0] == 503
    assert call(venue, "GET", "/health")[0] == 503
    set_fault(venue, mode="error_5xx")
    assert call(venue, "GET", "/orders")[0] == 500
    assert call(venue, "GET", "/health")[0] == 200
    set_fault(venue, mode="drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        call(venue, "GET", "/orders")
    set_fault(venue, mode="slow", extra_latency_s=0.3)
    assert call(venue, "GET", "/orders", timeout=2.0)[0] == 200
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(venue, "GET", "/orders", timeout=0.1)
    # timeout: the order is taken, the answer never comes in time; the retry is idempotent.
    set_fault(venue, mode="timeout", timeout_s=3.0)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(venue, "POST", "/orders", order("t1", price=40.0), timeout=0.3)
    set_fault(venue, mode="none")
    status, retry, _ = call(venue, "POST", "/orders", order("t1", price=40.0))
    assert status == 200 and retry["replayed"]
    assert [o["client_order_id"] for o in call(venue, "GET", "/orders")[1]] == ["t1"]
    assert call(venue, "POST", "/admin/faults", {"mode": "bogus"}, key=ADMIN)[0] == 400


def test_one_request_log_behind_admin_requests_and_traffic(venue: VenueServer) -> None:
    """The venue's one log: every non-admin request as it arrived, the fault drawn for it, its status and the order
    entry's body; ``GET /admin/requests`` and ``traffic().log`` (its trading requests) read the same records. A
    fault mix draws several modes from the seeded generator. Red if a request were missing, logged twice, or a log
    lost what the other had (status, connection, client order id)."""
    venue.reset_traffic()
    call(venue, "POST", "/orders", order("a1", price=40.0))
    call(venue, "GET", "/orders/a1")
    call(venue, "DELETE", "/orders/a1")
    call(venue, "GET", "/health")
    set_fault(venue, mode="error_5xx")
    call(venue, "POST", "/orders", order("a2", price=40.0))
    set_fault(venue, mode="none")
    status, rows, _ = call(venue, "GET", "/admin/requests", key=ADMIN)
    assert status == 200
    assert [(r["method"], r["path"], r["client_order_id"], r["status"], r["fault"]) for r in rows] == [
        ("POST", "/orders", "a1", 201, "none"), ("GET", "/orders/a1", "a1", 200, "none"),
        ("DELETE", "/orders/a1", "a1", 200, "none"), ("GET", "/health", "", 200, "none"),
        ("POST", "/orders", "a2", 500, "error_5xx")]
    assert rows[0]["body"] == order("a1", price=40.0) and rows[1]["body"] is None
    assert all(r["traded"] and r["connection"] >= 1 and r["ended_s"] >= r["started_s"] > 0 for r in rows)
    assert [r.row() for r in venue.traffic().log] == rows == venue.requests()
    assert call(venue, "POST", "/admin/faults", {"mode": "mix", "mix": {"error_5xx": 0.5, "drop": 0.2}},
                key=ADMIN)[0] == 200
    for _ in range(40):
        with contextlib.suppress(http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError):
            call(venue, "GET", "/orders", timeout=2.0)
    set_fault(venue, mode="none")
    drawn = Counter(r["fault"] for r in venue.requests()[5:])
    assert set(drawn) == {"none", "error_5xx", "drop"} and sum(drawn.values()) == 40, drawn
    assert call(venue, "POST", "/admin/faults", {"mode": "mix", "mix": {"down": 0.7, "drop": 0.7}},
                key=ADMIN)[0] == 400
    assert call(venue, "POST", "/admin/faults", {"mode": "mix"}, key=ADMIN)[0] == 400


def test_entry_point_help() -> None:
    result = subprocess.run([sys.executable, "-m", "paper.server", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "--api-key" in result.stdout and "--feed" in result.stdout


def test_wattflow_venue_command_serves_orders_over_http(tmp_path: Path) -> None:
    """`wattflow venue` as a user starts it: a real process, keys from the environment."""
    import os
    import time
    from datetime import date as _date

    import orjson as _orjson

    from connectors.feeds.files import write_feed
    from paper.simulator import simulate_day
    from wattflow.stack.process import free_port as _free_port

    feed = tmp_path / "day.parquet"
    frame = simulate_day("DE-LU", _date(2018, 10, 28), seed=3, scale=0.05, durations_min=(60,))
    write_feed(frame, feed)
    port = _free_port()
    env = {**os.environ, "WATTFLOW_VENUE_API_KEY": "k-test", "WATTFLOW_VENUE_ADMIN_KEY": "a-test",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "cli", "venue", "--feed", str(feed), "--port", str(port),
                                "--speed", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the venue did not come up"
                time.sleep(0.2)
        product = frame.products()[0]
        body = _orjson.dumps({"client_order_id": "cli-1", "product": product, "side": "BUY",
                              "price_eur_per_mwh": 1.0, "quantity_mw": 0.1, "tif": "GTC"})
        request = urllib.request.Request(f"{url}/orders", data=body, method="POST",
                                         headers={"X-API-Key": "k-test", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:  # a reject (e.g. NOT_OPEN at the manual clock's start) is an answer
            status = error.code
        assert status in (201, 422)
        unauthorised = urllib.request.Request(f"{url}/orders", method="GET")
        try:
            urllib.request.urlopen(unauthorised, timeout=5)
            raise AssertionError("an order list without a key must be refused")
        except urllib.error.HTTPError as error:
            assert error.code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
