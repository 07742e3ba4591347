"""The cycling issue's acceptance run, end to end through the real commands.

A local server serves a synthetic Mjøsbyen week in Trafikkdata's exact GraphQL shapes (the
autumn clock change, paging, null volumes, a vehicle point, an out-of-region point, a point
silent for a day); a second serving corrects some hours. ingest v1 → drain → ingest v2 → drain,
then ``byflyt query hourly --format csv`` must equal the table computed here, independently,
from the dataset by the rules — on SQLite and on PostgreSQL, and re-running changes nothing.
"""

from __future__ import annotations

import pytest

from byflyt.samples.trafikkdata import mjosbyen_week
from byflyt.samples.trafikkdata_server import TrafikkdataServer
from tests.cycling_expect import FROM, TO, expected_csv_rows, parse
from tests.helpers import byflyt, ingest_week

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_week_with_corrections_equals_the_rules(store_env: dict[str, str]) -> None:
    env = store_env
    v1, v2 = mjosbyen_week(1), mjosbyen_week(2)
    assert v2.corrected
    query = [
        "query",
        "hourly",
        "--region",
        "mjosbyen",
        "--mode",
        "bicycle",
        "--metric",
        "volume",
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "csv",
    ]
    with TrafikkdataServer(v1) as server:
        ingest = ingest_week(server.url)
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        after_v1 = parse(byflyt(env, *query).stdout)
        assert after_v1 == expected_csv_rows(v1)

        server.set_dataset(v2)
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        first = byflyt(env, *query).stdout
        assert parse(first) == expected_csv_rows(v2)

        # Re-running either step changes nothing.
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        assert byflyt(env, *query).stdout == first
        byflyt(env, "worker", "--drain")
        assert byflyt(env, *query).stdout == first

    rows = parse(first)
    hours = {r[4] for r in rows}
    assert {"2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z"} <= hours  # both 02:00 local hours
    kommuner = {r[0] for r in rows}
    assert "3401" not in kommuner  # out of region
    assert "0301" not in kommuner
    assert {"3403", "3405", "3407"} <= kommuner
