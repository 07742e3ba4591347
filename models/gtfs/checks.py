"""What ``byflyt gtfs load`` checks in a static GTFS feed before it keeps anything.

Two kinds of findings, after the canonical GTFS validator's rules that matter to byflyt:

- **per-row rules** (:data:`RULES`): the offending rows (or trips) are dropped and counted, the
  feed is kept: duplicate keys, references to trips, stops, routes or services the feed does not
  have, times that go backwards within a trip, trips longer than ``max_calls_per_journey``,
  stops without coordinates (kept, but placed in no kommune);
- **unusable feeds** (:class:`FeedUnusable`, a :class:`~byflyt.errors.ConfigError`): a zip
  that would inflate beyond the limits, missing required files or columns, or nothing left to
  keep. The command stops with one line and a non-zero exit.

The zip is checked from its central directory before a byte is inflated: the total declared
uncompressed size and each member's compression ratio. ``zipfile`` never inflates a member past
its declared size, so a lying header cannot get round the check.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass, field

from byflyt.errors import ConfigError

#: Per-row rules, their unit and what a finding means.
RULES: dict[str, str] = {
    "duplicate_stop_id": "stops.txt rows whose stop_id came before (the first is kept)",
    "duplicate_route_id": "routes.txt rows whose route_id came before (the first is kept)",
    "duplicate_trip_id": "trips.txt rows whose trip_id came before (the first is kept)",
    "duplicate_stop_time": "stop_times.txt rows whose (trip_id, stop_sequence) came before",
    "unknown_route": "trips whose route_id is not in routes.txt (dropped)",
    "unknown_service": "trips whose service_id is in neither calendar file (dropped)",
    "unknown_trip": "stop_times.txt rows whose trip_id is not in trips.txt (dropped)",
    "unknown_stop": "stop_times.txt rows whose stop_id is not in stops.txt (dropped)",
    "invalid_stop_sequence": "stop_times.txt rows whose stop_sequence is not a number (dropped)",
    "times_backwards": "trips whose times go backwards along stop_sequence (dropped)",
    "too_many_stop_times": "trips with more stop times than BYFLYT_MAX_CALLS_PER_JOURNEY (dropped)",
    "stop_without_coordinates": "stops with no coordinates, neither their own nor their parent's",
}


class FeedUnusable(ConfigError):
    """A feed (or zip) byflyt refuses whole; ``rule`` names the check."""

    def __init__(self, rule: str, problem: str, fix: str) -> None:
        self.rule = rule
        super().__init__("--zip", problem, fix)


@dataclass
class FeedReport:
    """Findings of the per-row rules: rule → count."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, rule: str, count: int) -> None:
        """Count ``count`` findings of ``rule`` (zero is not recorded)."""
        if rule not in RULES:
            raise ValueError(f"unknown GTFS rule {rule!r}")
        if count:
            self.counts[rule] += int(count)

    def lines(self) -> list[str]:
        """One line per rule with findings, for the command's summary."""
        return [f"{rule:<26} {self.counts[rule]:>9}  {RULES[rule]}" for rule in sorted(self.counts)]


def check_archive(archive: zipfile.ZipFile, *, max_total: int, max_ratio: float) -> None:
    """Refuse a zip whose members would inflate past ``max_total`` bytes or ``max_ratio``.

    Reads only the central directory; nothing is decompressed.
    """
    total = 0
    for info in archive.infolist():
        if info.is_dir():
            continue
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024 * 1024 and ratio > max_ratio:
            raise FeedUnusable(
                "zip_ratio",
                f"zip member {info.filename!r} would inflate {ratio:.0f}× "
                f"({info.compress_size} → {info.file_size} bytes), more than the limit of "
                f"{max_ratio:.0f}× (a zip bomb?)",
                "give a real GTFS zip, or raise BYFLYT_GTFS_MAX_COMPRESSION_RATIO",
            )
    if total > max_total:
        raise FeedUnusable(
            "zip_size",
            f"the zip would inflate to {total} bytes, more than the limit of {max_total}",
            "give a smaller feed, or raise BYFLYT_GTFS_MAX_UNCOMPRESSED_BYTES",
        )
