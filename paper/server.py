"""The paper venue's HTTP API: a :class:`PaperExchange` behind API keys, a rate limit, latency and faults.

Endpoints (JSON bodies and answers; every non-admin endpoint but ``/health`` needs ``X-API-Key``)::

    GET    /health                    200 {"status":"ok","clock_ns":..}   (503 in fault mode "down")
    POST   /orders                    {"client_order_id","product","side","price_eur_per_mwh","quantity_mw",
                                       "tif"?,"display_quantity_mw"?}  -> 201 new order, 200 replay of a
                                       known id, 409 DUPLICATE_CLIENT_ORDER_ID, 422 other rejects, 400 bad
                                       body; ``display_quantity_mw`` (absent or null: a plain order) makes a
                                       GTC iceberg (the exchange module docstring has the rules); orders
                                       answer it back (null for a plain order)
    GET    /orders                    200 [open orders]
    GET    /orders/{client_order_id}  200 order, 404 unknown
    DELETE /orders/{client_order_id}  200 order (cancelled, or as it was if already done), 404 unknown
    DELETE /orders[?product=KEY]      200 {"cancelled":[orders]}
    GET    /fills                     200 [fills]
    GET    /reports[?since=EXEC_ID]   200 [execution reports with exec_id > since]
    GET    /book/{product}            200 the played book
    GET    /stream/market[?since=SEQ] 200 chunked NDJSON: the feed's events as the market clock passes them
    GET    /stream/reports[?since=EXEC_ID]  200 chunked NDJSON: execution reports as they happen
    POST   /admin/faults              {"mode","extra_latency_s"?,"timeout_s"?,"probability"?}  (admin key)
    GET    /admin/faults
    POST   /admin/clock               {"ts_ns"} (manual clock) or {"speed": x} (wall clock from here)
    GET    /admin/clock
    GET    /admin/requests            200 [{"wall_ns","method","path","client_order_id","connection","traded",
                                       "concurrent","fault","status","started_s","ended_s","body"}]: every
                                       non-admin request as it arrived (before faults, retries included;
                                       ``body`` for an order entry): the venue's own log, which tests and
                                       benchmarks count orders against (:class:`~paper.limits.RequestRecord`)

Connections are HTTP/1.1 keep-alive: a client may send any number of requests over one connection (idle ones
are closed after ``KEEPALIVE_IDLE_S``, and all at :meth:`VenueServer.stop`). For tests, the server counts what it
sees (:meth:`VenueServer.traffic`): TCP connections accepted, trading requests (admin calls and streams not
counted), the most it handled at once, and the trading requests of its one request log.

Errors: 401 missing or wrong key, 403 a trading key on /admin, 429 over the rate limit (``Retry-After``
in whole seconds), 404 unknown path. Fault modes (admin endpoints are never faulted):

* ``none``; ``down``: 503 to everything, ``/health`` included; ``error_5xx``: 500 to the trading
  endpoints; ``slow``: ``extra_latency_s`` more latency; ``drop``: the connection is closed without an
  answer (the request is not processed); ``timeout``: the request *is processed*, then the answer is held
  ``timeout_s`` (longer than clients wait), so a retry must rely on idempotent client order ids.
  ``probability`` (default 1) applies the fault to that share of requests (seeded, reproducible); ``mix``
  (``{"mix": {"timeout": 0.02, "error_5xx": 0.05, "drop": 0.02}}``) draws one of several modes per request
  (seeded: the schedule depends only on the order requests arrive in). The log records the fault drawn.

Streams (``/stream/...``, API key needed) answer ``application/x-ndjson`` with chunked transfer encoding and
never end on their own; ``since`` is the last position the client has (0 or absent: from the start), so a
client resumes without a gap. Lines::

    {"seq":N,"key":"DE-LU:2018-10-28T12:00Z:PT60M","msg":<raw message>}   market: feed row N (1-based, feed
        order); ``msg`` is the last field and byte for byte the message ``wattflow replay`` sends for that
        event (``json_lines``), ``key`` the Kafka key replay uses (product, or area for day-ahead prices)
    {<execution report, as GET /reports>}                                   reports: ``exec_id`` increasing
    {"heartbeat":CLOCK_NS,"stream":"market","seq":N,"feed_events":M,"feed_exhausted":false}
    {"heartbeat":CLOCK_NS,"stream":"reports","exec_id":N,"feed_exhausted":false}

A heartbeat opens every stream and follows every ``STREAM_HEARTBEAT_S`` of silence (``seq``/``exec_id``: the
last position sent). The streaming thread moves the market clock itself (``tick()``, the lock held only for
that). Faults are drawn once per stream request (``down`` 503, ``error_5xx`` 500, ``drop`` no answer,
``slow`` a delay, ``timeout`` the headers held ``timeout_s``); switching the venue to ``down`` or ``drop``
(probability 1) also ends the open streams abruptly, and ``stop()`` ends them with the final chunk.

Market clock: ``speed=None`` (manual; tests) starts before the feed's first event and moves only by
``POST /admin/clock``; ``speed=x`` replays the feed from its first event at x times wall time, advanced
lazily at each request. All API keys trade one shared account; the rate limit counts per key.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import orjson

from connectors.feeds.files import FeedFrame, json_lines, read_feed
from paper.exchange import PaperExchange
from paper.handler import make_handler
from paper.limits import (
    FAULT_MODES,
    STREAM_CHUNK_LINES,
    STREAM_HEARTBEAT_S,
    FaultConfig,
    RateLimiter,
    RequestRecord,
)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # several clients opening their pools at once must not overflow the backlog


@dataclass(slots=True)
class Traffic:
    """What the venue saw since it started (or :meth:`VenueServer.reset_traffic`)."""

    connections: int = 0      # TCP connections accepted
    requests: int = 0         # trading requests (not admin calls, not streams)
    in_flight: int = 0        # trading requests being handled now
    max_in_flight: int = 0    # the most handled at once
    log: list[RequestRecord] = field(default_factory=list)  # the trading requests among the latest logged, oldest first


#: The request log keeps this many of the latest requests (a long-running venue must not grow without bound).
REQUEST_LOG_SIZE = 500_000


class VenueServer:
    """The paper venue: an exchange, its HTTP server and its settings; :meth:`start` serves in a thread."""

    def __init__(self, feed: FeedFrame, *, port: int = 0, host: str = "127.0.0.1",
                 api_keys: Sequence[str] = ("paper",), admin_key: str | None = None,
                 rate_limit_per_s: int = 50, latency_s: float = 0.0, speed: float | None = None,
                 seed: int = 0) -> None:
        if not api_keys:
            raise ValueError("the paper venue needs at least one API key")
        self.exchange = PaperExchange(feed)
        self.feed = feed
        # Feed order, as replay sends it; an event is passed once the clock reaches it and every event before.
        self._passed_ts_ns = np.maximum.accumulate(feed.ts_ns) if len(feed) else feed.ts_ns
        self.heartbeat_s = STREAM_HEARTBEAT_S
        self.api_keys = frozenset(api_keys)
        self.admin_key = admin_key
        self.rate_limiter = RateLimiter(rate_limit_per_s)
        self.latency_s = latency_s
        self.faults = FaultConfig()
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._random = random.Random(seed)
        self._speed: float | None = None
        self._wall_origin = 0.0
        self._wall_origin_ns = 0
        self._clock_origin_ns = 0
        if speed:
            self.set_speed(speed)
        self._traffic = Traffic()
        #: Every request but the admin ones, as received (before any fault): the venue's own log, the truth the
        #: tests and benchmarks count orders against (:meth:`requests`, ``GET /admin/requests``, :meth:`traffic`).
        self._log: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        self._traffic_lock = threading.Lock()
        self._connection_numbers = itertools.count(1)
        self._connections: dict[socket.socket, int] = {}  # open connections -> their number
        self._busy: set[socket.socket] = set()  # connections handling a request now
        self.httpd = _HTTPServer((host, port), make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]!s}:{self.port}"

    def start(self) -> VenueServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"venue-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving: no new connection, idle keep-alive connections shut, busy ones closed after their
        answer, streams ended with their final chunk."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._traffic_lock:
            idle = [connection for connection in self._connections if connection not in self._busy]
        for connection in idle:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- traffic (for tests) ---------------------------------------------------------------------

    def traffic(self) -> Traffic:
        """A copy of the counts and of the trading requests in the log."""
        with self._traffic_lock:
            t = self._traffic
            return Traffic(t.connections, t.requests, t.in_flight, t.max_in_flight,
                           [replace(r) for r in self._log if r.traded])

    def open_connections(self) -> int:
        """Connections open now (a client killed mid-request is closed here once its requests were handled)."""
        with self._traffic_lock:
            return len(self._connections)

    def reset_traffic(self) -> None:
        """Start the counts and the request log (``requests()`` included) afresh."""
        with self._traffic_lock:
            self._traffic = Traffic(in_flight=self._traffic.in_flight)
            self._log.clear()

    def connection_opened(self, connection: socket.socket) -> None:
        with self._traffic_lock:
            self._traffic.connections += 1
            self._connections[connection] = next(self._connection_numbers)

    def connection_closed(self, connection: socket.socket) -> None:
        with self._traffic_lock:
            self._connections.pop(connection, None)
            self._busy.discard(connection)

    def request_started(self, connection: socket.socket, method: str, path: str, *, counted: bool,
                        logged: bool = True) -> tuple[socket.socket, RequestRecord | None]:
        """A request arrived on ``connection`` (busy until it is answered): logged (unless ``logged`` is false: an
        admin call) as it arrives; ``counted``: a trading request. The record is filled in as it is handled."""
        with self._traffic_lock:
            self._busy.add(connection)
            if not logged:
                return connection, None
            record = RequestRecord(time.time_ns(), method, path, self._connections.get(connection, 0),
                                   time.monotonic(), counted)
            if counted:
                t = self._traffic
                t.requests += 1
                t.in_flight += 1
                t.max_in_flight = max(t.max_in_flight, t.in_flight)
                record.concurrent = t.in_flight
            self._log.append(record)
            return connection, record

    def request_ended(self, token: tuple[socket.socket, RequestRecord | None], status: int,
                      answered_s: float = 0.0) -> None:
        """The request was handled: ``answered_s`` is when its answer started to go out (0: none did)."""
        connection, record = token
        with self._traffic_lock:
            self._busy.discard(connection)
            if record is None:
                return
            if record.traded:
                self._traffic.in_flight -= 1
            record.ended_s = answered_s or time.monotonic()
            record.status = status

    def __enter__(self) -> VenueServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- clock and faults ------------------------------------------------------------------------

    def set_speed(self, speed: float | None) -> None:
        """Replay at ``speed`` times wall time from the current clock (the feed's start if not yet begun)."""
        with self.lock:
            start = self.exchange.first_ts_ns or 0
            self._clock_origin_ns = max(self.exchange.clock_ns, start)
            self._wall_origin = time.monotonic()
            self._wall_origin_ns = time.time_ns()
            self._speed = speed if speed and speed > 0 else None

    def wall_ns_of(self, ts_ns: int) -> int | None:
        """The wall time (``time.time_ns``) at which the market clock reaches ``ts_ns``, on a wall clock (None on a
        manual clock): when a feed event "happened" at this venue."""
        with self.lock:
            if self._speed is None:
                return None
            return self._wall_origin_ns + int((ts_ns - self._clock_origin_ns) / self._speed)

    def set_clock(self, ts_ns: int) -> None:
        with self.lock:
            self._speed = None
            self.exchange.advance_to(ts_ns)

    def tick(self) -> None:
        """Advance the exchange to the wall-clock market time (no-op on a manual clock)."""
        with self.lock:
            if self._speed is not None:
                elapsed_ns = (time.monotonic() - self._wall_origin) * self._speed * 1e9
                self.exchange.advance_to(self._clock_origin_ns + int(elapsed_ns))

    def clock_state(self) -> dict[str, Any]:
        return {"ts_ns": self.exchange.clock_ns, "speed": self._speed,
                "feed_first_ts_ns": self.exchange.first_ts_ns, "feed_last_ts_ns": self.exchange.last_ts_ns,
                "feed_exhausted": self.exchange.feed_exhausted}

    # --- streams ---------------------------------------------------------------------------------

    def market_events_passed(self) -> int:
        """How many of the feed's events (in feed order) the market clock has passed."""
        return int(np.searchsorted(self._passed_ts_ns, self.exchange.clock_ns, side="right"))

    def market_lines(self, start: int, stop: int) -> list[bytes]:
        """The stream lines of feed rows ``start`` to ``stop`` (0-based, stop excluded): seq = row + 1."""
        frame = self.feed.take(np.arange(start, stop))
        keys = [orjson.dumps(key) for key in frame.key_strings().tolist()]
        return [b'{"seq":%d,"key":%b,"msg":%b}\n' % (start + i + 1, key, raw)
                for i, (key, raw) in enumerate(zip(keys, json_lines(frame), strict=True))]

    def report_lines(self, since_exec_id: int) -> tuple[list[bytes], int]:
        """Execution reports after ``since_exec_id`` (at most a chunk) as lines, and the last exec_id sent."""
        with self.lock:
            # exec ids count 1, 2, ... in list order, so the reports after ``since`` start at index ``since``.
            fresh = [r for r in self.exchange.reports[max(since_exec_id, 0):][:STREAM_CHUNK_LINES]
                     if r.exec_id > since_exec_id]
        if not fresh:
            return [], since_exec_id
        return [orjson.dumps(r) + b"\n" for r in fresh], fresh[-1].exec_id

    def log_request(self, record: RequestRecord | None, body: Any, fault: str) -> None:
        """Complete a logged request's record with what its body names and the fault drawn for it."""
        if record is None:
            return
        cid = body.get("client_order_id", "") if isinstance(body, dict) else ""
        if not cid and record.path.startswith("/orders/"):
            cid = unquote(record.path[len("/orders/"):])
        with self._traffic_lock:
            record.client_order_id = str(cid)
            record.fault = fault
            if record.method == "POST" and record.path == "/orders" and isinstance(body, dict):
                record.body = dict(body)

    def request_records(self) -> list[RequestRecord]:
        """The request log (copies), in arrival order: every request but the admin ones."""
        with self._traffic_lock:
            return [replace(r) for r in self._log]

    def requests(self) -> list[dict[str, Any]]:
        """The request log as JSON-ready rows, in arrival order (``GET /admin/requests``)."""
        return [r.row() for r in self.request_records()]

    def set_faults(self, faults: FaultConfig) -> None:
        if faults.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {faults.mode!r}: expected one of {', '.join(FAULT_MODES)}")
        self.faults = faults

    def draw_fault(self) -> str:
        faults = self.faults
        if faults.mode == "none":
            return "none"
        with self.lock:
            if faults.mode == "mix":
                drawn, total = self._random.random(), 0.0
                for mode, share in faults.mix:
                    total += share
                    if drawn < total:
                        return mode
                return "none"
            hit = faults.probability >= 1 or self._random.random() < faults.probability
        return faults.mode if hit else "none"


def serve(feed_path: str | Path, port: int, api_key: str | Sequence[str], *, host: str = "127.0.0.1",
          admin_key: str | None = None, rate_limit_per_s: int = 50, latency_s: float = 0.0,
          speed: float | None = None, background: bool = False) -> VenueServer:
    """Serve the paper venue over the feed at ``feed_path``.

    Blocks until interrupted, unless ``background`` (then it serves in a daemon thread; call ``stop()``).
    """
    keys = [api_key] if isinstance(api_key, str) else list(api_key)
    venue = VenueServer(read_feed(feed_path), port=port, host=host, api_keys=keys, admin_key=admin_key,
                        rate_limit_per_s=rate_limit_per_s, latency_s=latency_s, speed=speed)
    if background:
        return venue.start()
    try:
        venue.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        venue.httpd.server_close()
    return venue


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paper.server",
        description="Serve a paper venue (a simulated intraday exchange) that plays a recorded feed.")
    parser.add_argument("--feed", required=True, help="feed file (.jsonl, .jsonl.gz or .parquet)")
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--api-key", action="append",
                        help="API key clients send in X-API-Key (repeat for several; default: the environment "
                        "variable WATTFLOW_VENUE_API_KEY, which keeps the key out of the process list)")
    parser.add_argument("--admin-key", default=os.environ.get("WATTFLOW_VENUE_ADMIN_KEY") or None,
                        help="key for /admin endpoints (default: WATTFLOW_VENUE_ADMIN_KEY; none: admin disabled)")
    parser.add_argument("--rate-limit", type=int, default=50, help="requests per second per key (0: none)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every answer")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay speed over wall time (default 1; 0: manual clock via POST /admin/clock)")
    args = parser.parse_args(argv)
    api_keys = args.api_key or ([os.environ["WATTFLOW_VENUE_API_KEY"]] if os.environ.get("WATTFLOW_VENUE_API_KEY")
                                else [])
    if not api_keys:
        parser.error("give --api-key or set WATTFLOW_VENUE_API_KEY")
    print(f"paper venue on http://{args.host}:{args.port} playing {args.feed}", flush=True)
    serve(args.feed, args.port, api_keys, host=args.host, admin_key=args.admin_key,
          rate_limit_per_s=args.rate_limit, latency_s=args.latency_ms / 1000.0, speed=args.speed or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
