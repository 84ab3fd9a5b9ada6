"""Clients of a venue: orders over HTTP (``client``), the order sink of the trading flow (``order_sink``) and
the adapter that puts the venue's market-data and execution-report streams on Kafka (``adapter``). They talk
to the paper venue (``paper/``) exactly as they would to a real one."""
