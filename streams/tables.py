"""faust tables changed by batch sinks: each changed key written to its changelog once a flush.

A faust table sends a changelog record for every assignment, to the partition of faust's
*current event*. A batch sink (:meth:`byflyt.streams.sink.Sink.consume_batches`) applies whole
fetches outside faust's per-event iteration, and one batch often changes a key many times (a
trip in every snapshot, a kommune-hour with every fact): :class:`WriteBack` keeps the batch's
changes beside the table and writes each changed key once, at the sink's flush, before the
batch is acknowledged. Each change is written on the partition of the record that made it,
as faust would have (a key's input always arrives on one partition, so that is its partition).

Reads see the batch's changes. The values are the objects the table keeps, so a value read,
changed in place and assigned again is the same object; until the flush only the changelog
lags, and nothing is acknowledged before the flush.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

import faust
from faust.types import Message

from byflyt.streams.sink import in_event

_DELETED = object()


class _Carrier:
    """What a faust table reads of its current event: the message (topic and partition)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Message) -> None:
        self.message = message


@contextmanager
def in_message(message: Message) -> Iterator[None]:
    """Make ``message`` faust's current record while a table is changed for it.

    Only table changes belong inside: a topic send there would try to attach itself to the
    record as to a faust event.
    """
    carrier = _Carrier(message)  # kept here: faust holds only a weak reference to it
    with in_event(cast(faust.EventT, carrier)):
        yield


class WriteBack(MutableMapping[str, Any]):
    """A faust table whose changes reach its changelog once per key, at :meth:`flush`.

    Set :attr:`message` to the record being applied before changing a key: its partition is
    where the change goes.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.message: Message | None = None
        self.pending: dict[str, Any] = {}
        self.origin: dict[str, Message] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.pending:
            value = self.pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The batch's value of ``key``, else the table's."""
        if key in self.pending:
            value = self.pending[key]
            return default if value is _DELETED else value
        return self.table.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and key in self.pending:
            return self.pending[key] is not _DELETED
        return key in self.table

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value
        self.origin[key] = self._message()

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED
        self.origin[key] = self._message()

    def __iter__(self) -> Iterator[str]:
        pending = self.pending
        for key in self.table:
            if key not in pending:
                yield key
        for key, value in pending.items():
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _message(self) -> Message:
        if self.message is None:
            raise RuntimeError("a table change needs the record it is made for (set .message)")
        return self.message

    def flush(self) -> int:
        """Write every changed key to the table (and so its changelog) once; how many."""
        pending, self.pending = self.pending, {}
        origin, self.origin = self.origin, {}
        table = self.table
        written = 0
        for key, value in pending.items():
            if value is _DELETED and key not in table:
                continue  # made and dropped within the batch
            with in_message(origin[key]):
                if value is _DELETED:
                    del table[key]
                else:
                    table[key] = value
            written += 1
        return written
