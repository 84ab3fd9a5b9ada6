"""Kafka administration: create wattflow's topics idempotently and wait for the broker."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from wattflow.errors import KafkaError
from wattflow.settings import KafkaSettings

#: Every topic wattflow creates is stamped by the broker with the time it appended the message. A producer's
#: own timestamp (a replayed 2018 day's event time, say) would otherwise let time-based retention delete the
#: topic at its next check; event time stays in the payload.
TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.client_config())


def ensure_topics(settings: KafkaSettings, topics: dict[str, int], replication_factor: int = 1,
                  timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (name -> partitions), with :data:`TOPIC_CONFIG`; returns the names
    created."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as error:
        raise KafkaError(
            f"Kafka at {settings.bootstrap_servers} did not answer: {error}",
            hint="start it with `wattflow stack up`, or check WATTFLOW_KAFKA_BOOTSTRAP_SERVERS",
        ) from None
    missing = [NewTopic(name, num_partitions=n, replication_factor=replication_factor, config=TOPIC_CONFIG)
               for name, n in topics.items() if name not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise KafkaError(f"could not create topic {name}: {error}") from None
    return created


def topic_partitions(settings: KafkaSettings, topic: str, timeout_s: float = 10.0) -> int:
    metadata = admin_client(settings).list_topics(topic, timeout=timeout_s)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise KafkaError(f"topic {topic} does not exist", hint="create it with `wattflow stack init`")
    return len(info.partitions)


def delete_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> list[str]:
    """Delete these topics (those that exist); returns the names deleted. Kafka finishes the deletion later."""
    if not names:
        return []
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [name for name in names if name in existing]
    if not wanted:
        return []
    deleted = []
    for name, future in admin.delete_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
            deleted.append(name)
        except KafkaException as error:
            raise KafkaError(f"could not delete topic {name}: {error}") from None
    return deleted


def list_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> list[str]:
    return sorted(admin_client(settings).list_topics(timeout=timeout_s).topics)


def align_topic_config(settings: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> list[str]:
    """Set :data:`TOPIC_CONFIG` on these existing topics (created before wattflow set it); returns the names
    changed. Other settings of the topics are left as they are."""
    if not names:
        return []
    admin = admin_client(settings)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    stale = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        entries = future.result()
        if any(entries[key].value != value for key, value in TOPIC_CONFIG.items()):
            stale.append(resource.name)
    if not stale:
        return []
    changes = [ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in TOPIC_CONFIG.items()])
        for name in stale]
    for resource, future in admin.incremental_alter_configs(changes, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as error:
            raise KafkaError(f"could not set {TOPIC_CONFIG} on topic {resource.name}: {error}") from None
    return stale
