"""The SQL store: one :class:`Store` over the table families, each in its own module.

:mod:`~byflyt.store.counts` (points, point-hours, fetched windows), :mod:`~byflyt.store.volumes`
(kommune-hours, flows), :mod:`~byflyt.store.status` (outages, freshness), all on
:class:`~byflyt.store.base.StoreBase` (connection, transactions, natural-key upserts).
"""

from __future__ import annotations

from byflyt.store.counts import CountsStore
from byflyt.store.status import StatusStore
from byflyt.store.volumes import VolumesStore


class Store(CountsStore, VolumesStore, StatusStore):
    """The SQL store behind the sinks, ``byflyt query``, the API and the reports.

    Thread-safe: each call takes its own pooled connection and transaction.
    """
