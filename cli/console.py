"""What every command shares: the output consoles and loading the settings named on the command line."""

from __future__ import annotations

import argparse

from rich.console import Console

from wattflow.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def load_settings(args: argparse.Namespace) -> Settings:
    return Settings.load(getattr(args, "settings", None))
