"""A paper venue: a simulated intraday exchange that plays a recorded feed and fills our orders against it.

``exchange`` is the pure matching logic (no I/O, no clock of its own); ``server`` wraps it in an HTTP API
with API keys, a rate limit, added latency and fault injection, standing in for a broker in tests.
"""
