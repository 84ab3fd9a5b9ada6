"""``wattflow loadtest``: how much the system takes, how fast it reacts, whether it holds for an hour.

A room of its own: it drives the whole system from outside (a feed into Kafka on an open-loop schedule, the
flows and the paper venue as processes) and reads back what each stage did, keyed against the feed sent in.
One module per idea: ``load`` (the messages and their intended send times), ``sender`` (the open-loop
producer), ``processes`` (the venue, the flows, an own stack), ``observe`` (lag, CPU, RSS, counts while it
runs), ``reference`` (what the flows must do with the load), ``latency`` (HdrHistogram summaries), ``verdict``
(the sustainability rule, RSS slopes, comparisons), ``report`` (JSON, Markdown, plots), ``run`` (a whole run).
"""
