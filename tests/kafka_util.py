"""Small helpers for tests that read and write the session's real Kafka."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from byflyt.kafka import client_kwargs
from byflyt.settings import Settings


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Send ``(key, value)`` records and wait until the broker has them all."""
    producer = KafkaProducer(**client_kwargs(settings), acks="all")
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` from the beginning to its current end, in partition order."""
    consumer = KafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[tuple[bytes | None, bytes | None]] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend((r.key, r.value) for r in batch)
        return records
    finally:
        consumer.close()
