"""Kafka: admin, sources and sinks."""
