"""Kafka's default partitioning of keyed records, for many keys at once.

Every Kafka client's default partitioner puts a keyed record on partition
``(murmur2(key) & 0x7fffffff) % partitions`` (the Java client's ``Utils.murmur2``; aiokafka and
kafka-python carry it in pure Python, about 10 µs a key). A compacted topic relies on it: a key
must land on the partition its earlier records are on, or the old value would outlive the new.
:func:`key_partitions` computes the same partitions for a whole list of keys with numpy, a
column of 4-byte blocks at a time for the keys of one length (a flush's keys mostly share a
few lengths), so a sink can hand the producer one batch per partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes]) -> list[int]:
    """Kafka's 32-bit murmur2 of each key (as ``aiokafka.partitioner.murmur2`` gives it)."""
    hashes = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    for length, where in by_length.items():
        for i, h in zip(where, _murmur2_of_length([keys[i] for i in where], length), strict=True):
            hashes[i] = h
    return hashes


def key_partitions(keys: Sequence[bytes], partitions: int) -> list[int]:
    """The partition of each key among ``partitions``, as the default partitioner picks it."""
    return [(h & 0x7FFFFFFF) % partitions for h in murmur2(keys)]


def _murmur2_of_length(keys: list[bytes], length: int) -> list[int]:
    """murmur2 of keys that are all ``length`` bytes long, as a column per 4-byte block."""
    m = _M
    data = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    h = np.full(len(keys), (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    blocks = length // 4
    if blocks:
        words = np.ascontiguousarray(data[:, : blocks * 4]).view("<u4")
        for j in range(blocks):
            k = words[:, j] * m
            k ^= k >> np.uint32(24)
            k *= m
            h *= m
            h ^= k
    tail = data[:, blocks * 4 :].astype(np.uint32)
    extra = length % 4
    if extra >= 3:
        h ^= tail[:, 2] << np.uint32(16)
    if extra >= 2:
        h ^= tail[:, 1] << np.uint32(8)
    if extra >= 1:
        h ^= tail[:, 0]
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return [int(x) for x in h.tolist()]
