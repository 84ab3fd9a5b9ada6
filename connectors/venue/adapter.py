"""The feed adapter: the paper venue's streams into Kafka, resumed without a gap after any disconnect.

Two followers, each a thread with its own checked producer:

* **market**: ``GET /stream/market?since=SEQ`` -> the raw topic (``settings.topics.raw``), each line's ``msg``
  published byte for byte, keyed as ``wattflow replay`` keys it (product, or area for day-ahead prices); so
  the topic holds exactly what a replay of the venue's feed would put there.
* **reports**: ``GET /stream/reports?since=EXEC_ID`` -> ``settings.topics.execution_reports``, keyed by
  ``client_order_id``, the value the report's JSON (as ``GET /reports``) plus ``"source": "venue"``.

A position (seq, exec_id) only counts once Kafka has confirmed it (``flush`` of a :class:`CheckedProducer`
after a batch, after at most ``flush_interval_s``, and before every reconnect): a reconnect asks for what comes
after the last *confirmed* position, so nothing is skipped, and what was read but not confirmed is read again.
After a clean disconnect everything read was confirmed first, so a normal reconnect repeats nothing; only a
crash (or a Kafka failure) can repeat messages, which the ingest store's dedup keys absorb.

A stream is dead when no line (heartbeats come every second) arrives for ``idle_timeout_s``. Reconnects wait
with exponential backoff and jitter. Each outage is two events on ``settings.topics.events`` in the events
topic's format (``connectors.wire.events``; source and key ``venue_adapter.<stream>``)::

    {"ts_ns": WALL_NS, "kind": "venue_stream_disconnected", "source": "venue_adapter.market", "product": "",
     "severity": "WARNING", "detail": {"stream": "market", "url": .., "reason": "...", "resume_from": SEQ}}
    {"ts_ns": WALL_NS, "kind": "venue_stream_reconnected", "source": "venue_adapter.market", "product": "",
     "severity": "INFO", "detail": {"stream": "market", "url": .., "attempts": N, "down_s": 1.23, "resume_from": SEQ}}
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from connectors.kafka.producer import CheckedProducer
from connectors.wire.events import encode_event
from wattflow.errors import KafkaDeliveryError, VenueError
from wattflow.events import Event
from wattflow.settings import Settings, VenueSettings

log = logging.getLogger("wattflow.venue")

MARKET, REPORTS = "market", "reports"
STREAMS: tuple[str, ...] = (MARKET, REPORTS)
_MSG_FIELD = b',"msg":'
_HEARTBEAT = b'{"heartbeat"'


@dataclass
class StreamStats:
    """Progress of one stream. ``position`` is the last seq / exec_id Kafka confirmed."""

    stream: str
    position: int = 0
    published: int = 0
    connects: int = 0
    reconnects: int = 0
    heartbeats: int = 0
    duplicates_skipped: int = 0
    clock_ns: int = 0
    venue_position: int = 0
    feed_exhausted: bool = False
    done: bool = False
    last_error: str | None = None

    @property
    def lag(self) -> int:
        """Lines the venue had sent at its last heartbeat that Kafka has not confirmed yet."""
        return max(self.venue_position - self.position, 0)


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    idle_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    flush_interval_s: float = 0.2
    flush_batch: int = 5_000
    kafka_timeout_s: float = 30.0


class _StreamBrokenError(Exception):
    """The stream ended or failed; reconnect from the confirmed position."""


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The complete lines of a chunked answer, as they arrive (a torn last line is dropped)."""
    rest = b""
    while True:
        data = response.read1(1 << 16)
        if not data:
            return
        *complete, rest = (rest + data).split(b"\n")
        yield from (line for line in complete if line)


def split_market_line(line: bytes) -> tuple[int, str, bytes]:
    """``{"seq":N,"key":K,"msg":RAW}`` -> (N, K, RAW bytes exactly as sent). ``msg`` is the last field, and
    ``,"msg":`` cannot occur inside the JSON string ``key`` (its quotes would be escaped)."""
    head, found, tail = line.partition(_MSG_FIELD)
    if not found or not tail.endswith(b"}"):
        raise _StreamBrokenError(f"malformed market line: {line[:120]!r}")
    fields = orjson.loads(head + b"}")
    return int(fields["seq"]), str(fields["key"]), tail[:-1]


class StreamFollower:
    """Follow one venue stream into Kafka until stopped (or, with ``until_exhausted``, until the feed is over)."""

    def __init__(self, settings: Settings, stream: str, *, api_key: str, until_exhausted: bool = False,
                 options: AdapterOptions | None = None, stop: threading.Event | None = None,
                 start_position: int = 0, seed: int | None = None) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}: expected one of {', '.join(STREAMS)}")
        self.settings = settings
        self.stream = stream
        self.api_key = api_key
        self.until_exhausted = until_exhausted
        self.options = options or AdapterOptions()
        self.stop_event = stop or threading.Event()
        self.stats = StreamStats(stream, position=start_position)
        self.topic = settings.topics.raw if stream == MARKET else settings.topics.execution_reports
        self.url = settings.venue.url
        self.error: BaseException | None = None
        self._random = random.Random(seed)
        self._producer = self._new_producer()
        self._pending_position = start_position
        self._pending = 0
        self._first_pending = 0.0

    # --- the loop ----------------------------------------------------------------------------------

    def run(self) -> StreamStats:
        attempts = 0
        down_since: float | None = None
        while not self.stop_event.is_set():
            reason = ""
            try:
                connection, response = self._connect()
            except _StreamBrokenError as broken:
                reason = str(broken)
            else:
                self.stats.connects += 1
                if down_since is not None:
                    self.stats.reconnects += 1
                    self._event("venue_stream_reconnected", attempts=attempts,
                                down_s=round(time.monotonic() - down_since, 3), resume_from=self.stats.position)
                    log.info("venue %s stream: reconnected after %d attempts, resuming after %d",
                             self.stream, attempts, self.stats.position)
                attempts, down_since = 0, None
                try:
                    self._follow(response)
                except _StreamBrokenError as broken:
                    reason = str(broken)
                finally:
                    connection.close()
            if self.stats.done or self.stop_event.is_set():
                break
            self._settle()
            self.stats.last_error = reason
            attempts += 1
            if down_since is None:
                down_since = time.monotonic()
                self._event("venue_stream_disconnected", reason=reason, resume_from=self.stats.position)
                log.warning("venue %s stream lost (%s); reconnecting from %d", self.stream, reason,
                            self.stats.position)
            self.stop_event.wait(self._backoff_s(attempts))
        self._settle()
        return self.stats

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with jitter: a draw in [b/2, b], b = initial * 2^(attempt-1) capped at max."""
        ceiling = min(self.options.backoff_max_s, self.options.backoff_initial_s * 2 ** min(attempt - 1, 20))
        return ceiling * (0.5 + 0.5 * self._random.random())

    def _connect(self) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                                timeout=self.options.idle_timeout_s)
        try:
            connection.request("GET", f"/stream/{self.stream}?since={self.stats.position}",
                               headers={"X-API-Key": self.api_key, "Accept": "application/x-ndjson"})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _StreamBrokenError(f"{type(error).__name__}: {error}") from None
        if response.status != 200:
            body = response.read(500).decode(errors="replace")
            connection.close()
            if response.status in (401, 403, 404):
                # Waiting will not fix a wrong key or URL: stop and say so.
                raise VenueError(f"the venue at {self.url} answered {response.status} to /stream/{self.stream}: "
                                 f"{body}", hint="check WATTFLOW_VENUE_API_KEY and WATTFLOW_VENUE_HOST/PORT")
            raise _StreamBrokenError(f"HTTP {response.status}: {body}")
        return connection, response

    def _follow(self, response: http.client.HTTPResponse) -> None:
        market = self.stream == MARKET
        try:
            for line in _lines(response):
                if line.startswith(_HEARTBEAT):
                    self._on_heartbeat(orjson.loads(line))
                    if self.stats.done or self.stop_event.is_set():
                        return
                    continue
                if market:
                    position, key, value = split_market_line(line)
                else:
                    report = orjson.loads(line)
                    position, key = int(report["exec_id"]), str(report["client_order_id"])
                    value = orjson.dumps({**report, "source": "venue"})
                if position <= self._pending_position:
                    self.stats.duplicates_skipped += 1
                    continue
                if market and position != self._pending_position + 1:
                    raise _StreamBrokenError(f"gap: seq {position} after {self._pending_position}")
                self._producer.produce(self.topic, value, key.encode())
                self._pending_position = position
                if self._pending == 0:
                    self._first_pending = time.monotonic()
                self._pending += 1
                if (self._pending >= self.options.flush_batch
                        or time.monotonic() - self._first_pending >= self.options.flush_interval_s):
                    self._confirm()
                if self.stop_event.is_set():
                    return
        except (OSError, http.client.HTTPException) as error:  # TimeoutError included: a dead stream
            raise _StreamBrokenError(f"{type(error).__name__}: {error or 'no line within the idle timeout'}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise _StreamBrokenError(f"bad line from the venue: {error}") from None
        raise _StreamBrokenError("the venue ended the stream")

    def _on_heartbeat(self, beat: dict[str, Any]) -> None:
        self._confirm()
        stats = self.stats
        stats.heartbeats += 1
        stats.clock_ns = int(beat.get("heartbeat", 0))
        stats.feed_exhausted = bool(beat.get("feed_exhausted"))
        stats.venue_position = int(beat.get("seq" if self.stream == MARKET else "exec_id", 0))
        caught_up = self.stream == REPORTS or stats.position >= int(beat.get("feed_events", 0))
        if self.until_exhausted and stats.feed_exhausted and caught_up:
            stats.done = True

    # --- Kafka -------------------------------------------------------------------------------------

    def _new_producer(self) -> CheckedProducer:
        return CheckedProducer(self.settings.kafka, **{"linger.ms": 5,
                                                       "message.timeout.ms": int(self.options.kafka_timeout_s * 1000)})

    def _confirm(self) -> None:
        """Wait for Kafka to confirm what was produced; only then does the position move."""
        if self._pending == 0:
            return
        try:
            self._producer.flush(self.options.kafka_timeout_s)
        except KafkaDeliveryError as error:
            # Some of the batch may be stored, some not: read it all again (duplicates, never a gap).
            self._producer = self._new_producer()
            self._pending, self._pending_position = 0, self.stats.position
            raise _StreamBrokenError(f"Kafka did not confirm: {error}") from None
        self.stats.published += self._pending
        self.stats.position = self._pending_position
        self._pending = 0

    def _settle(self) -> None:
        """Confirm what was read before a reconnect, so that the venue is not asked for it again."""
        try:
            self._confirm()
        except _StreamBrokenError as broken:
            log.error("venue %s stream: %s", self.stream, broken)
        self._pending_position = self.stats.position

    def _event(self, kind: str, **detail: Any) -> None:
        severity = "WARNING" if kind == "venue_stream_disconnected" else "INFO"
        event = Event(time.time_ns(), kind, "", severity, {"stream": self.stream, "url": self.url, **detail})
        source = f"venue_adapter.{self.stream}"
        events = CheckedProducer(self.settings.kafka, **{"linger.ms": 0, "message.timeout.ms": 10_000})
        try:
            events.produce(self.settings.topics.events, encode_event(event, source), source.encode())
            events.flush(10.0)
        except KafkaDeliveryError as error:
            log.error("could not record %s on %s: %s", kind, self.settings.topics.events, error)


class VenueAdapter:
    """The market and/or reports followers, each in a thread; :meth:`run` blocks until they finish."""

    def __init__(self, settings: Settings, *, market: bool = True, reports: bool = True,
                 until_exhausted: bool = False, api_key: str | None = None,
                 options: AdapterOptions | None = None) -> None:
        if not (market or reports):
            raise VenueError("the adapter needs at least one stream (market or reports)")
        key = api_key or venue_api_key(settings)
        self.stop_event = threading.Event()
        self.followers = [
            StreamFollower(settings, stream, api_key=key, until_exhausted=until_exhausted, options=options,
                           stop=self.stop_event)
            for stream, wanted in ((MARKET, market), (REPORTS, reports)) if wanted
        ]
        self._threads: list[threading.Thread] = []

    @property
    def stats(self) -> dict[str, StreamStats]:
        return {f.stream: replace(f.stats) for f in self.followers}

    def start(self) -> VenueAdapter:
        for follower in self.followers:
            thread = threading.Thread(target=self._run_one, args=(follower,), name=f"adapter-{follower.stream}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @staticmethod
    def _run_one(follower: StreamFollower) -> None:
        try:
            follower.run()
        except BaseException as error:  # reported by join()/run() in the caller's thread
            follower.error = error
            follower.stop_event.set()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the followers; True when all have finished. Raises the first follower's error."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        for follower in self.followers:
            if follower.error is not None:
                raise follower.error
        return not any(thread.is_alive() for thread in self._threads)

    def run(self) -> dict[str, StreamStats]:
        self.start()
        self.join()
        return self.stats

    def __enter__(self) -> VenueAdapter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join(30)


def venue_api_key(settings: Settings) -> str:
    """The trading key: WATTFLOW_VENUE_API_KEY, else the one `wattflow stack up` stored for its venue."""
    if settings.venue.api_key is not None:
        return settings.venue.api_key.get_secret_value()
    from wattflow.stack.servers import stored_venue_keys

    stored = stored_venue_keys(settings)
    if stored is not None:
        return stored[0]
    raise VenueError("no API key for the paper venue",
                     hint="set WATTFLOW_VENUE_API_KEY (or start the venue with `wattflow stack up` and "
                     "WATTFLOW_VENUE_FEED, which stores its keys in the state directory)")


def venue_settings_with_key(settings: Settings) -> VenueSettings:
    """The venue settings with the trading key (:func:`venue_api_key`: a clear error names both sources when
    there is neither)."""
    if settings.venue.api_key is not None:
        return settings.venue
    return settings.venue.model_copy(update={"api_key": SecretStr(venue_api_key(settings))})
