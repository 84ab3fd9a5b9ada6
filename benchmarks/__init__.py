"""Benchmarks: wattflow against its baselines, measured in the same run on the same data.

Each module is a script (``python -m benchmarks.<name> --help``) that prints a table and writes
``benchmarks/results/<name>.json``. See benchmarks/README.md and shared/design/performance.md.
"""
