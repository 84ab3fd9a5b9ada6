"""R7: the kill switch under load, against a running execution flow, real Kafka and the paper venue.

Functional only: every halt reaches HALTED and a cancel-all the venue confirmed, no order is open at the venue
after it nor while HALTED, every resume reaches ACTIVE. How long these take is measured with enough samples for
its percentiles by ``benchmarks/bench_kill_switch.py``, not asserted here."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.kill import send_kill
from cli.run import bytewax_command
from connectors.kafka.producer import CheckedProducer
from connectors.wire.signals import signal_records
from paper.server import VenueServer
from tests.helpers import flow_env, python, with_topics
from tests.trading import T0, reports_adapter, start_venue, venue_settings
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

PRODUCTS = [f"DE-LU:2018-10-28T{hour:02d}:00Z:PT60M" for hour in range(12, 20)]
CYCLES = 12


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueServer]:
    server = start_venue(tmp_path, PRODUCTS)
    yield server
    server.stop()


class SignalLoad(threading.Thread):
    """Signals for every product, ``rate`` records per second, with a book that keeps moving (so working orders
    are cancelled and replaced all the time)."""

    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        from tests.trading import signals

        producer = CheckedProducer(self.settings.kafka)
        started = time.monotonic()
        k = 0
        while not self.stop.is_set():
            product = PRODUCTS[k % len(PRODUCTS)]
            # The book moves every half second and the targets turn every second: each product's working
            # order is replaced a few times a second, as a busy intraday day would have it.
            bid = 45.0 + (k // int(self.rate / 2)) % 3
            target = 5.0 if (k // int(self.rate)) % 2 else -5.0
            batch = signals([target], first_trade=10_000 + k, product=product,
                            start_ns=T0 + k * 100_000_000, bid=bid, ask=bid + 2.0, gap_s=0.1)
            records = signal_records(batch, self.settings.topics.signals)
            producer.produce_many(records.topic, [str(key) for key in records.keys], records.values)
            producer.poll(0)
            k += 1
            self.sent = k
            pause = started + k / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        producer.flush(30)


def open_orders(server: VenueServer) -> int:
    with server.lock:
        return len(server.exchange.open_orders())


def test_kill_switch_under_load_halts_and_cancels_everything(
        settings: Settings, unique: str, venue: VenueServer, tmp_path: Path) -> None:
    s = venue_settings(with_topics(settings, unique), venue, clip_interval_s=0.0, order_ttl_s=3600.0,
                       max_orders_per_interval=100_000, max_total_position_mw=10_000.0)
    env = flow_env(s)
    flow = subprocess.Popen(bytewax_command("execution", tail=True, batch_size=2000, workers=1, recovery=None,
                                            snapshot_interval_s=5), env=env, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "flow.log").open("wb"))
    load = SignalLoad(s, rate=400.0)
    adapter = contextlib.ExitStack()  # the reports stream, closed in finally
    adapter.enter_context(reports_adapter(s))
    load.start()
    halted = cancelled = resumed_count = 0
    open_after: list[int] = []
    try:
        for cycle in range(CYCLES):
            deadline = time.monotonic() + 60
            while open_orders(venue) == 0 and time.monotonic() < deadline:
                assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
                time.sleep(0.05)
            assert open_orders(venue) > 0, "orders rest at the venue before the halt"
            if cycle == 0:  # once through the command itself
                done = subprocess.run([python(), "-m", "cli", "kill", "--halt", "--reason", "R7"], env=env,
                                      capture_output=True, text=True, timeout=60, check=False)
                assert done.returncode == 0, done.stdout + done.stderr
                assert "HALTED after" in done.stdout and "cancel-all confirmed" in done.stdout
                halted, cancelled = halted + 1, cancelled + 1
                status = subprocess.run([python(), "-m", "cli", "kill", "--status"], env=env,
                                        capture_output=True, text=True, timeout=60, check=False)
                assert status.returncode == 0, status.stderr
                said = " ".join(status.stdout.split())
                assert said.startswith("HALTED since") and "reason: R7" in said and "pending" not in said, said
            else:
                result = send_kill(s, "halt", reason="R7", wait_s=20)
                halted += result.state_after_s is not None
                cancelled += result.cancel_all_after_s is not None
            open_after.append(open_orders(venue))
            time.sleep(0.3)  # signals keep coming: nothing new may rest while HALTED
            open_after.append(open_orders(venue))
            resumed = send_kill(s, "resume", wait_s=20)
            resumed_count += resumed.state_after_s is not None
    finally:
        load.stop.set()
        load.join(30)
        adapter.close()
        flow.terminate()
        flow.wait(30)
    print(f"\nR7: {CYCLES} halts under {load.rate:.0f} signal records/s ({load.sent} sent): HALTED confirmed "
          f"{halted}, cancel-all confirmed by the venue {cancelled}, resumed {resumed_count}; orders open at the venue "
          f"after a halt or while HALTED {sum(open_after)} (timings: benchmarks/bench_kill_switch.py)")
    assert (halted, cancelled, resumed_count) == (CYCLES, CYCLES, CYCLES)
    assert open_after == [0] * (2 * CYCLES)
