"""The hostile-input corpus: every case, its file and what byflyt must do with it.

Each case is one file in the source's exact shape: SIRI answers (``siri/*.xml``) and Trafikkdata
answers (``trafikkdata/*``) are kept here, small; GTFS-realtime snapshots, GTFS zips and the
large or machine-specific cases (10,000 calls, a zip bomb, XXE pointing at a temp file and a
local port) are generated at test time by ``tests/test_corpus.py`` under the same names.

``rejected`` are the dead-letter reason codes the case's file must produce (in any order),
``good`` the ids of the good records beside the bad ones that must still arrive (trip ids,
point ids), ``failed`` whether the item fails as a whole (the command then exits 1 after
finishing the rest), ``says`` a piece of the reason a person reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    """One hostile or broken input and the outcome it must have."""

    source: str
    name: str
    rejected: tuple[str, ...] = ()
    good: tuple[str, ...] = ()
    says: str = ""
    failed: bool = False


SIRI = [
    Case("siri", "s01_empty", ("siri_malformed",), says="is not XML"),
    Case("siri", "s02_truncated", ("siri_malformed",), ("good-s02",), "is not XML"),
    Case("siri", "s03_random_bytes", ("siri_malformed",), says="is not XML"),
    Case("siri", "s04_html_error_page", ("siri_html",), says="HTML page"),
    Case("siri", "s05_billion_laughs", ("siri_unsafe_xml",), says="DOCTYPE"),
    Case("siri", "s06_quadratic_blowup", ("siri_unsafe_xml",), says="DOCTYPE"),
    Case("siri", "s07_xxe_file", ("siri_unsafe_xml",), says="DOCTYPE"),
    Case("siri", "s08_xxe_network", ("siri_unsafe_xml",), says="DOCTYPE"),
    Case("siri", "s09_wrong_namespace", ("siri_wrong_namespace",), says="not SIRI's"),
    Case("siri", "s10_deeply_nested", ("siri_malformed",), ("good-s10",), "depth"),
    Case("siri", "s11_vm_answer", ("siri_wrong_delivery",), says="VehicleMonitoringDelivery"),
    Case("siri", "s12_error_condition", ("siri_error_condition",), says="Unknown datasetId"),
    Case("siri", "s13_journey_10000_calls", ("too_many_calls",), ("good-s13",), "limit of 1000"),
    Case("siri", "s14_local_times", (), ("good-s14",)),
    Case("siri", "s15_unknown_journey", ("invalid_journey",), ("good-s15",), "not in static"),
    Case("siri", "s16_unreadable_time", ("invalid_journey",), ("good-s16",), "not an ISO 8601"),
    Case("siri", "s17_not_siri_root", ("siri_malformed",), says="not Siri"),
    Case("siri", "s18_duplicate_journeys", (), ("good-s18",)),
    Case("siri", "s19_far_future", ("invalid_journey",), ("good-s19",), "days from"),
    Case("siri", "s20_ms_epoch_time", ("invalid_journey",), ("good-s20",), "not an ISO 8601"),
]

GTFS_RT = [
    Case("gtfs-rt", "g01_empty", ("invalid_snapshot",), says="no header timestamp"),
    Case("gtfs-rt", "g02_truncated", ("invalid_snapshot",), says="does not parse"),
    Case("gtfs-rt", "g03_random_bytes", ("invalid_snapshot",), says="does not parse"),
    Case("gtfs-rt", "g04_html_error_page", ("invalid_snapshot",), says="does not parse"),
    Case("gtfs-rt", "g05_ms_header", ("invalid_snapshot",), says="milliseconds"),
    Case("gtfs-rt", "g06_ms_entity_time", ("invalid_entity",), ("good-g06",), "milliseconds"),
    Case("gtfs-rt", "g07_duplicate_entity_ids", ("invalid_entity",), ("good-g07",), "came before"),
    Case("gtfs-rt", "g08_added_without_route", (), ("good-g08", "bart-added-g08")),
    Case("gtfs-rt", "g09_trip_10000_updates", ("invalid_entity",), ("good-g09",), "10000 stop"),
    Case("gtfs-rt", "g10_unknown_trip", ("invalid_entity",), ("good-g10",), "not in static"),
    Case(
        "gtfs-rt", "g11_times_decrease", ("invalid_entity",), ("good-g11",), "before the previous"
    ),
    Case("gtfs-rt", "g12_far_future_header", ("invalid_snapshot",), says="more than 60 s after"),
    Case("gtfs-rt", "g13_far_past_header", ("invalid_snapshot",), says="older than the last"),
    Case("gtfs-rt", "g14_unknown_stop", ("invalid_entity",), ("good-g14",), "stop_id"),
]

TRAFIKKDATA = [
    Case("trafikkdata", "t01_good_point", (), ("10001B1",)),
    Case("trafikkdata", "t02_no_municipality", ("invalid_point",), says="has no municipality"),
    Case("trafikkdata", "t03_unknown_kommune", ("invalid_point",), says="no Norwegian kommune"),
    Case("trafikkdata", "t04_negative_volume", ("invalid_node",), ("10001B1",), "greater than"),
    Case("trafikkdata", "t05_absurd_volume", ("invalid_node",), ("10001B1",), "less than"),
    Case("trafikkdata", "t06_ms_epoch", ("invalid_node",), ("10001B1",), "not ISO 8601"),
    Case("trafikkdata", "t07_far_future", ("invalid_node",), ("10001B1",), "outside the window"),
    Case("trafikkdata", "t08_far_past", ("invalid_node",), ("10001B1",), "outside the window"),
    Case("trafikkdata", "t09_html_200", (), ("10007B1",), "10004B1", failed=True),
    Case("trafikkdata", "t10_graphql_errors", (), ("10007B1",), "ValidationError", failed=True),
    Case(
        "trafikkdata", "t11_data_null", ("invalid_response",), ("10007B1",), "no data object", True
    ),
]

GTFS = [
    Case("gtfs", "z01_empty", says="cannot open"),
    Case("gtfs", "z02_random_bytes", says="cannot open"),
    Case("gtfs", "z03_truncated", says="cannot open"),
    Case("gtfs", "z04_zip_bomb", says="zip bomb"),
    Case("gtfs", "z05_no_stops", says="no stops.txt"),
    Case("gtfs", "z06_missing_column", says="lacks columns"),
    Case("gtfs", "z07_none_in_region", says="0 trips kept"),
    Case("gtfs", "z08_duplicates", good=("duplicate_stop_time", "duplicate_stop_id")),
    Case("gtfs", "z09_bad_sequence", good=("invalid_stop_sequence",)),
]

ALL = SIRI + GTFS_RT + TRAFIKKDATA + GTFS
