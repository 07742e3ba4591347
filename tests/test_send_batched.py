"""A flush's records sent a batch per partition: the partitions and order a record-by-record
send gives, against the session's real broker.

A compacted output topic (``volumes.hourly``) keeps a key's latest value only if every record
of the key lands on one partition, the one Kafka's default partitioner picks; the sink now
computes that partition itself (a numpy murmur2) and hands the producer whole batches.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from kafka.admin import NewTopic

from byflyt.kafka import admin
from byflyt.partitioning import key_partitions
from byflyt.partitioning import murmur2 as murmur2_many
from byflyt.settings import Settings
from byflyt.streams.sink import send_batched

PARTITIONS = 6


def test_murmur2_is_kafkas_for_keys_of_every_length() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 70)) for _ in range(5000)]
    keys += [f"3403|bicycle|volume|2025-03-30T{h:02d}:00:00Z".encode() for h in range(24)]
    assert murmur2_many(keys) == [murmur2(key) for key in keys]
    every = list(range(PARTITIONS))
    assert key_partitions(keys, PARTITIONS) == [
        DefaultPartitioner()(key, every, every) for key in keys
    ]


async def _send_and_read(
    settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> list[tuple[int, bytes | None, bytes | None]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        max_batch_size=4096,  # many batches a partition
        max_request_size=1024 * 1024,
        acks="all",
    )
    await producer.start()
    try:
        sent = await send_batched(producer, topic, records)
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        while len(got) < len(records):
            for tp, batch in (await consumer.getmany(timeout_ms=2000)).items():
                got.extend((tp.partition, r.key, r.value) for r in batch)
    finally:
        await consumer.stop()
    return got


@pytest.mark.kafka
def test_batches_land_where_a_record_by_record_send_would(settings: Settings, unique: str) -> None:
    topic = f"sendbatched-{unique}"
    client = admin(settings)
    try:
        client.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        client.close()
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"{3400 + i % 9}|bicycle|volume|{i // 9:06d}".encode(), f"value {i}".encode() * 8)
        for i in range(3000)
    ]
    records[17] = (records[17][0], None)  # a tombstone
    records[500] = (records[500][0], b"x" * 20_000)  # larger than a batch
    got = asyncio.run(_send_and_read(settings, topic, records))

    every = list(range(PARTITIONS))
    expected = {key: DefaultPartitioner()(key, every, every) for key, _ in records}
    assert sorted(((key, value) for _, key, value in got), key=str) == sorted(records, key=str)
    assert all(partition == expected[key] for partition, key, _ in got)
    for partition in every:  # each partition in the order given
        in_order = [(k, v) for k, v in records if expected[k] == partition]
        assert [(k, v) for p, k, v in got if p == partition] == in_order
    assert len(set(expected.values())) == PARTITIONS
