"""wattflow: a streaming power-trading engine for European short-term power markets."""

__version__ = "0.1.0"
