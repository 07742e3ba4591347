"""``WriteBack``: a batch's table changes reach the table once per key, on their record's partition.

The stream tests run it on real faust tables and changelogs (``test_transit_stream``,
``test_transit_pipeline``, ``test_feed_status_stream``: a fresh worker goes on from what the
changelog holds). Here, the bookkeeping alone: the table is a dict that notes, for each write,
the partition of faust's current record, which is where faust sends a table's changelog record.
"""

from __future__ import annotations

from typing import Any

import pytest
from faust.streams import current_event
from faust.types import TP, Message

from byflyt.streams.tables import WriteBack


class NotingTable(dict[str, Any]):
    """A dict that notes each write as (key, partition of the current record)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[tuple[str, int | None]] = []

    def _partition(self) -> int | None:
        event = current_event()
        return None if event is None else event.message.partition

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, self._partition()))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append((key, self._partition()))
        super().__delitem__(key)


def record(partition: int, offset: int) -> Message:
    return Message(
        topic="transit.facts.by-kommune",
        partition=partition,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=b"3403",
        value=b"{}",
        checksum=None,
        tp=TP("transit.facts.by-kommune", partition),
    )


def test_a_batch_writes_each_changed_key_once_on_its_records_partition() -> None:
    table = NotingTable({"kept": 1, "old": 2})
    back = WriteBack(table)
    for offset in range(5):
        back.message = record(1, offset)
        back["cell"] = back.get("cell", 0) + 1  # read back what the batch changed
    back.message = record(0, 9)
    back["new"] = 1
    del back["new"]  # made and dropped in the batch: nothing to write
    del back["old"]
    assert back["cell"] == 5
    assert "old" not in back
    assert "new" not in back
    assert sorted(back) == ["cell", "kept"]
    assert len(back) == 2
    assert table.writes == []  # nothing before the flush

    assert back.flush() == 2
    assert table.writes == [("cell", 1), ("old", 0)]
    assert table == {"kept": 1, "cell": 5}
    assert back.flush() == 0


def test_a_change_without_its_record_is_refused() -> None:
    back = WriteBack(NotingTable())
    with pytest.raises(RuntimeError, match=r"set \.message"):
        back["cell"] = 1
    with pytest.raises(KeyError):
        del back["missing"]
