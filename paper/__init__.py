"""The simulated outside world: a paper venue and a market simulator. Nothing here is wattflow; it stands in
for the market in the demo, the tests and the load tests.

``exchange`` is the pure matching logic (no I/O, no clock of its own); ``server`` wraps it in an HTTP API with
API keys, a rate limit, added latency, market-data and execution-report streams and fault injection
(``handler`` answers the requests); ``simulator`` makes a trading day of trades and L2 book updates from
real day-ahead prices and generation; ``handmade`` builds small hand-written feeds for tests and examples.
wattflow talks to the venue only through ``connectors.venue`` (the clients that would talk to a real one).
"""
