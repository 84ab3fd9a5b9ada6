"""Where the Kafka clients' own log goes: a file, not the terminal.

librdkafka logs each failed connection attempt to stderr (``%3|...|FAIL|...``), hundreds of lines a minute
while a broker is down, and notices such as ``Coordinator load in progress`` that look like errors. Every
client wattflow makes is given :data:`KAFKA_CLIENT_LOGGER` (``logger`` in its configuration), which writes
nowhere until :func:`log_kafka_clients` points it at a file.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

KAFKA_CLIENT_LOGGER = logging.getLogger("wattflow.kafka_clients")
KAFKA_CLIENT_LOGGER.propagate = False
KAFKA_CLIENT_LOGGER.addHandler(logging.NullHandler())
KAFKA_CLIENT_LOGGER.setLevel(logging.DEBUG)


def log_kafka_clients(state_dir: Path) -> Path:
    """Write the Kafka clients' log to ``<state_dir>/logs/kafka-clients.log`` (rotated at 10 MB); idempotent.
    Returns the file's path. Without a writable state directory the log is dropped, never printed."""
    path = (state_dir / "logs" / "kafka-clients.log").resolve()
    if any(getattr(h, "baseFilename", None) == str(path) for h in KAFKA_CLIENT_LOGGER.handlers):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=10_000_000, backupCount=2)
    except OSError:
        return path
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    KAFKA_CLIENT_LOGGER.addHandler(handler)
    return path
