"""Start-up check: a worker whose table state was lost rebuilds it, or refuses to start.

The agents' tables live in Kafka changelog topics; the consumer group's committed offsets say
how much input that state already holds. If a changelog topic is gone while the group has
committed offsets, a worker that just started would begin from an empty table at those offsets
and silently publish kommune-hours computed from part of their input. Instead:

* when every input partition still starts at offset 0 (retention has removed nothing), the
  group's offsets are deleted so the worker reprocesses its input from the beginning and the
  state is rebuilt; replays converge, because every result is keyed and upserted;
* otherwise the worker refuses to start with one line saying what to do.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from kafka import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError, KafkaError, NotCoordinatorError
from kafka.structs import TopicPartition

from byflyt.errors import BrokerError, ByflytError
from byflyt.kafka import admin, consumer
from byflyt.settings import Settings
from byflyt.streams.drain import agent_topics

log = logging.getLogger(__name__)

COORDINATOR_ATTEMPTS = 12


class StateLostError(ByflytError):
    """A table's changelog is gone and the worker cannot rebuild it from its input."""


def changelog_topics(app: faust.App) -> list[str]:
    """The changelog topic of every table of ``app``."""
    return sorted(table.changelog_topic.get_topic_name() for table in app.tables.values())


def ensure_state(app: faust.App, settings: Settings) -> str | None:
    """Rebuild lost table state from the input, or raise :class:`StateLostError`.

    Returns a description of the rebuild when one was started, None when the state is intact.
    """
    group = app.conf.id
    try:
        client = admin(settings)
    except BrokerError:
        return None  # faust waits for the broker itself; the check runs again on next start
    try:
        existing = set(client.list_topics())
        missing = [name for name in changelog_topics(app) if name not in existing]
        if not missing:
            return None
        offsets = _group_offsets(client, group)
        inputs = agent_topics(app)
        committed = {
            tp: meta.offset
            for tp, meta in offsets.items()
            if tp.topic in inputs and meta.offset > 0
        }
        if not committed:
            return None  # a new group: the state is built from the input anyway
        truncated = _truncated(settings, inputs)
        what = f"state topic {', '.join(missing)} is missing but group {group} has committed input"
        if truncated:
            raise StateLostError(
                f"{what} and {truncated} no longer starts at offset 0, so the state cannot be "
                f"rebuilt: restore the topic, or delete group {group} (kafka-consumer-groups "
                "--delete --group) to rebuild from what the input still holds"
            )
        status = client.delete_groups([group]).get(group, "OK")
        if status != "OK":
            raise StateLostError(
                f"{what}, and the group cannot be reset to rebuild it ({status}): stop every "
                f"worker of group {group}, then start one"
            )
    except KafkaError as exc:
        raise BrokerError(f"cannot check the worker's state topics: {exc}") from exc
    finally:
        client.close()
    message = f"{what}: rebuilding the state from the input (group offsets reset to the beginning)"
    log.warning(message)
    return message


def _group_offsets(client: KafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """The group's committed offsets; waits while a fresh broker elects the group coordinator."""
    for attempt in range(COORDINATOR_ATTEMPTS):
        try:
            offsets: dict[TopicPartition, Any] = client.list_group_offsets({group: None})
            return offsets.get(group, {}) if isinstance(offsets.get(group), dict) else {}
        except (CoordinatorNotAvailableError, NotCoordinatorError):
            time.sleep(min(0.25 * 2**attempt, 2.0))
    raise BrokerError(f"no group coordinator for {group} after {COORDINATOR_ATTEMPTS} attempts")


def _truncated(settings: Settings, topics: set[str]) -> str | None:
    """The first input partition whose log no longer starts at offset 0, or None."""
    cons = consumer(settings)
    try:
        parts = [
            TopicPartition(t, p) for t in sorted(topics) for p in cons.partitions_for_topic(t) or ()
        ]
        for tp, offset in sorted(cons.beginning_offsets(parts).items()):
            if offset > 0:
                return f"{tp.topic}[{tp.partition}]"
        return None
    finally:
        cons.close()
