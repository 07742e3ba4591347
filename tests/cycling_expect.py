"""The cycling rules written out a second time, independently of the agents, for tests.

Given every observation in the order it was produced, keep each (source, point, hour)'s last
value; then per kommune, mode and hour: value = sum of non-null volumes, n_sources = how many,
coverage = mean coverage over the points seen that hour (null counts as 0), 2 decimals; no row
when no point has a volume.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from byflyt.models.counts import CountObservation

Row = tuple[str, str, str, datetime, float, float, int]


def expected_rows(observations: list[CountObservation]) -> list[Row]:
    """``(kommune_nr, mode, metric, hour_start, value, coverage, n_sources)``, sorted."""
    latest: dict[tuple[str, str, datetime], CountObservation] = {}
    for obs in observations:
        hour = obs.start.replace(minute=0, second=0, microsecond=0)
        latest[(obs.source, obs.point_id, hour)] = obs
    cells: dict[tuple[str, str, datetime], list[CountObservation]] = defaultdict(list)
    for (_, _, hour), obs in latest.items():
        cells[(obs.kommune_nr, obs.mode, hour)].append(obs)
    rows: list[Row] = []
    for (kommune, mode, hour), members in cells.items():
        volumes = [o.volume for o in members if o.volume is not None]
        if not volumes:
            continue
        coverage = round(sum(o.coverage for o in members) / len(members), 2)
        rows.append((kommune, mode, "volume", hour, float(sum(volumes)), coverage, len(volumes)))
    return sorted(rows)
