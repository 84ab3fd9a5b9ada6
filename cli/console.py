"""What every command shares: the output consoles and loading the settings named on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from wattflow.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def load_settings(args: argparse.Namespace, needs: Sequence[str] = ()) -> Settings:
    """The settings of this command line; with ``needs`` (kafka, questdb, venue) each of those servers must accept
    a connection within a second and a half, or the command stops with one line saying what to start. The Kafka
    clients' own log goes to ``<state dir>/logs/kafka-clients.log``, not the terminal."""
    from wattflow.logs import log_kafka_clients
    from wattflow.stack.reach import require_servers

    settings = Settings.load(getattr(args, "settings", None))
    log_kafka_clients(settings.state_dir)
    require_servers(settings, needs)
    return settings


def positive(value: str) -> float:
    """An argparse type: a number greater than zero (``--speed 0`` is a usage error, not a crash)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return number


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal (80 columns in a pipe), example blocks kept as written: a paragraph
    whose lines after the first are indented is printed verbatim."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        paragraphs = text.strip("\n").split("\n\n")
        out = []
        for paragraph in paragraphs:
            lines = paragraph.split("\n")
            if len(lines) > 1 and all(line.startswith("  ") for line in lines[1:]):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)
