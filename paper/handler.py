"""The paper venue's HTTP request handler: orders, admin endpoints, and the market-data and report streams.

See ``paper.server`` for the API; this module answers one request at a time on the server's threads.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from paper.exchange import Reason, UnknownOrderError
from paper.limits import (
    KEEPALIVE_IDLE_S,
    MAX_BODY_BYTES,
    STREAM_CHUNK_LINES,
    STREAM_POLL_S,
    STREAM_WRITE_TIMEOUT_S,
    FaultConfig,
    RequestRecord,
)

if TYPE_CHECKING:
    from paper.server import VenueServer


class _AnswerError(Exception):
    """Raised inside a handler to answer with a status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def make_handler(venue: VenueServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_VenueHandler):
        pass

    Handler.venue = venue
    return Handler


class _VenueHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: a client may send many requests over one connection (every answer has a
    Content-Length); an idle connection is closed after ``KEEPALIVE_IDLE_S``, and by :meth:`VenueServer.stop`."""

    venue: VenueServer
    server_version = "wattflow-paper-venue/1"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the body waits for the client's delayed
    # ACK of the headers (up to 40 ms per answer on a kept-alive connection).
    disable_nagle_algorithm = True
    timeout = KEEPALIVE_IDLE_S  # socket timeout: an idle keep-alive connection ends after this
    _status = 0
    _answered_s = 0.0

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    def setup(self) -> None:
        super().setup()
        self.venue.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.venue.connection_closed(self.connection)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # --- plumbing --------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        venue = self.venue
        if venue.stopping.is_set():  # a request on a kept-alive connection after stop(): as if the port were shut
            self._drop()
            return
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
        admin = path.startswith("/admin")
        traded = not (admin or path.startswith("/stream/"))
        token = venue.request_started(self.connection, method, path, counted=traded, logged=not admin)
        self._status, self._answered_s = 0, 0.0
        try:
            self._handle(method, path, query, token[1])
        finally:
            venue.request_ended(token, self._status, self._answered_s)
            if venue.stopping.is_set():
                self.close_connection = True

    def _handle(self, method: str, path: str, query: dict[str, list[str]], record: RequestRecord | None) -> None:
        venue = self.venue
        try:
            body = self._read_body()
            if path.startswith("/admin/") or path == "/admin":
                self._send(*self._admin(method, path, body))
                return
            fault = venue.draw_fault()
            venue.log_request(record, body, fault)
            delay = venue.latency_s + (venue.faults.extra_latency_s if fault == "slow" else 0.0)
            if delay > 0:
                venue.stopping.wait(delay)
            if fault == "drop":
                self._drop()
                return
            if fault == "down":
                raise _AnswerError(503, {"error": "venue down"}, {"Retry-After": "1"})
            if path == "/health":
                venue.tick()
                self._send(200, {"status": "ok", "clock_ns": venue.exchange.clock_ns})
                return
            if fault == "error_5xx":
                raise _AnswerError(500, {"error": "injected internal error"})
            key = self.headers.get("X-API-Key")
            if key not in venue.api_keys:
                raise _AnswerError(401, {"error": "missing or unknown X-API-Key"})
            wait_s = venue.rate_limiter.check(key)
            if wait_s > 0:
                raise _AnswerError(429, {"error": "rate limit exceeded", "retry_after_s": wait_s},
                              {"Retry-After": str(max(1, math.ceil(wait_s)))})
            if path.startswith("/stream/") and method == "GET":
                self._stream(path, query, fault)
                return
            venue.tick()
            status, answer = self._route(method, path, query, body)
            if fault == "timeout":
                venue.stopping.wait(venue.faults.timeout_s)
            self._send(status, answer)
        except _AnswerError as answer:
            self._send(answer.status, answer.body, answer.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread: the connection cannot carry another request
            raise _AnswerError(413, {"error": "body too large"})
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise _AnswerError(400, {"error": f"body is not JSON: {error}"}) from None

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        self._status, self._answered_s = status, time.monotonic()  # before a byte of it can reach the client
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- streams ---------------------------------------------------------------------------------

    def _stream(self, path: str, query: dict[str, list[str]], fault: str) -> None:
        venue = self.venue
        if path not in ("/stream/market", "/stream/reports"):
            raise _AnswerError(404, {"error": f"no stream {path}"})
        market = path == "/stream/market"
        try:
            position = int(query.get("since", ["0"])[0])
        except ValueError:
            raise _AnswerError(400, {"error": "since must be an integer (seq or exec_id)"}) from None
        if position < 0:
            raise _AnswerError(400, {"error": "since must not be negative"})
        if fault == "timeout":
            venue.stopping.wait(venue.faults.timeout_s)
        self.connection.settimeout(STREAM_WRITE_TIMEOUT_S)
        # Chunked encoding needs HTTP/1.1 on this answer; the connection closes after it either way.
        self.protocol_version = "HTTP/1.1"
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        total = len(venue.feed)

        def heartbeat() -> bytes:
            beat: dict[str, Any] = {"heartbeat": venue.exchange.clock_ns, "stream": "market" if market else "reports"}
            if market:
                beat.update(seq=position, feed_events=total)
            else:
                beat["exec_id"] = position
            beat["feed_exhausted"] = venue.market_events_passed() >= total
            return orjson.dumps(beat) + b"\n"

        try:
            venue.tick()
            self._chunk(heartbeat())
            last_line = time.monotonic()
            while not venue.stopping.is_set():
                faults = venue.faults
                if faults.mode in ("down", "drop") and faults.probability >= 1:
                    self._drop()
                    return
                venue.tick()
                if market:
                    stop = min(venue.market_events_passed(), position + STREAM_CHUNK_LINES)
                    lines = venue.market_lines(position, stop) if stop > position else []
                    position = max(position, stop)
                else:
                    lines, position = venue.report_lines(position)
                now = time.monotonic()
                if lines:
                    self._chunk(b"".join(lines))
                    last_line = now
                elif now - last_line >= venue.heartbeat_s:
                    self._chunk(heartbeat())
                    last_line = now
                else:
                    venue.stopping.wait(STREAM_POLL_S)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (broken pipe, reset, write timeout)
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        self.wfile.flush()

    # --- routes ----------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        venue = self.venue
        key = self.headers.get("X-API-Key")
        if venue.admin_key is None or key != venue.admin_key:
            if key in venue.api_keys:
                raise _AnswerError(403, {"error": "admin endpoints need the admin key"})
            raise _AnswerError(401, {"error": "missing or unknown X-API-Key"})
        if path == "/admin/faults" and method == "GET":
            return 200, venue.faults
        if path == "/admin/faults" and method == "POST":
            fields = _object(body)
            try:
                current = FaultConfig()
                mix = fields.get("mix") or {}
                if not isinstance(mix, dict):
                    raise ValueError("mix must be an object of fault mode -> share of requests")
                faults = FaultConfig(
                    mode=str(fields.get("mode", "none")),
                    extra_latency_s=float(fields.get("extra_latency_s", current.extra_latency_s)),
                    timeout_s=float(fields.get("timeout_s", current.timeout_s)),
                    probability=float(fields.get("probability", current.probability)),
                    mix=tuple((str(mode), float(share)) for mode, share in mix.items()))
                venue.set_faults(faults)
            except (TypeError, ValueError) as error:
                raise _AnswerError(400, {"error": str(error)}) from None
            return 200, venue.faults
        if path == "/admin/requests" and method == "GET":
            return 200, venue.requests()
        if path == "/admin/clock" and method == "GET":
            return 200, venue.clock_state()
        if path == "/admin/clock" and method == "POST":
            fields = _object(body)
            if "ts_ns" in fields:
                ts_ns = fields["ts_ns"]
                if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
                    raise _AnswerError(400, {"error": "ts_ns must be an integer"})
                venue.set_clock(ts_ns)
            elif "speed" in fields:
                speed = fields["speed"]
                if not isinstance(speed, int | float) or isinstance(speed, bool):
                    raise _AnswerError(400, {"error": "speed must be a number"})
                venue.set_speed(float(speed))
            else:
                raise _AnswerError(400, {"error": "expected {\"ts_ns\": ..} or {\"speed\": ..}"})
            return 200, venue.clock_state()
        raise _AnswerError(404, {"error": f"no admin route {method} {path}"})

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        exchange = self.venue.exchange
        lock = self.venue.lock
        if path == "/orders" and method == "POST":
            fields = _object(body)
            missing = [name for name in ("client_order_id", "product", "side", "price_eur_per_mwh", "quantity_mw")
                       if name not in fields]
            if missing:
                raise _AnswerError(400, {"error": f"missing fields: {', '.join(missing)}"})
            with lock:
                report = exchange.submit(fields["client_order_id"], fields["product"], fields["side"],
                                         fields["price_eur_per_mwh"], fields["quantity_mw"],
                                         tif=fields.get("tif", "GTC"),
                                         display_quantity_mw=fields.get("display_quantity_mw"))
            if report.replayed:
                return 200, report
            if report.reason is Reason.DUPLICATE_CLIENT_ORDER_ID:
                return 409, report
            if report.status == "REJECTED":
                return 422, report
            return 201, report
        if path == "/orders" and method == "GET":
            with lock:
                return 200, exchange.open_orders()
        if path == "/orders" and method == "DELETE":
            product = query.get("product", [None])[0]
            with lock:
                return 200, {"cancelled": exchange.cancel_all(product)}
        if path.startswith("/orders/") and method in ("GET", "DELETE"):
            client_order_id = unquote(path[len("/orders/"):])
            try:
                with lock:
                    if method == "GET":
                        return 200, exchange.order(client_order_id)
                    return 200, exchange.cancel(client_order_id)
            except UnknownOrderError:
                raise _AnswerError(404, {"error": f"unknown client_order_id {client_order_id!r}"}) from None
        if path == "/fills" and method == "GET":
            with lock:
                return 200, exchange.fills()
        if path == "/reports" and method == "GET":
            try:
                since = int(query.get("since", ["0"])[0])
            except ValueError:
                raise _AnswerError(400, {"error": "since must be an integer exec_id"}) from None
            with lock:
                return 200, [r for r in exchange.reports if r.exec_id > since]
        if path.startswith("/book/") and method == "GET":
            with lock:
                return 200, exchange.book(unquote(path[len("/book/"):]))
        raise _AnswerError(404, {"error": f"no route {method} {path}"})


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _AnswerError(400, {"error": "expected a JSON object body"})
    return body
