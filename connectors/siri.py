"""Entur SIRI 2.0 (REST): Estimated Timetable → TripState, Vehicle Monitoring → VehicleSeen.

Innlandstrafikk (Entur codespace ``INN``) publishes no GTFS-realtime, so this connector reads
Entur's SIRI REST interface, ``GET {endpoint}/et?datasetId=INN&requestorId=…`` (and ``/vm``),
with ``ET-Client-Name`` and gzip. The ``requestorId`` is a UUID kept in the connector's Kafka
checkpoint, so after the first full answer the server sends only what changed; an answer with
``MoreData`` true is followed by another request at once (a page; ``--polls`` counts an answer
with all its pages as one poll). Requests go through a :class:`TokenBucket` of Entur's limit, 4
a minute per client, so a burst waits for a token instead of earning a 429.

Answers are parsed as they arrive (lxml's pull parser fed from the HTTP byte stream; each
``EstimatedVehicleJourney`` or ``VehicleActivity`` is cleared, with its finished siblings, once
read), so memory stays flat however large the answer. Each page is delivered and checkpointed on
its own. Bad input never stops the stream: an ``ErrorCondition`` in the delivery, an HTML error
page, malformed XML or a journey that cannot be used goes to ``dlq.rejected`` with a reason and
a metric; 429 and 5xx are retried with back-off (``Retry-After`` honoured). After an answer that
could not be read the connector starts over with a fresh ``requestorId``: the server may
already count the lost deltas as sent, and a full answer repeats them (counted once downstream).

ET journeys become whole-trip records on the static feed (:mod:`byflyt.connectors.siri_et`,
which states the rules), after :mod:`byflyt.connectors.siri_xml` has read them
(:mod:`byflyt.connectors.siri_elements`: what one element says).

VM: each ``VehicleActivity`` with a ``VehicleRef`` becomes a :class:`VehicleSeen` at its
``RecordedAtTime``, placed in a kommune by point-in-polygon of ``VehicleLocation``, with
``Occupancy`` when present; its mode comes from the static route of the journey (or ``LineRef``),
else ``VehicleMode``.

A replay (``--replay DIR``) reads recorded answers (``*.xml``, name order, one page each).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Literal

import httpx
from lxml import etree

from byflyt.connectors.base import Call, Discovery, PollResult, Record
from byflyt.connectors.feed_health import FeedHealthLog
from byflyt.connectors.http import check_endpoint as check_url
from byflyt.connectors.http import send_streaming
from byflyt.connectors.rate_limit import RATE_PER_MINUTE, TokenBucket
from byflyt.connectors.replay import read_replay
from byflyt.connectors.siri_elements import AnswerInfo, SiriActivity, SiriJourney
from byflyt.connectors.siri_et import VEHICLE_MODES, JourneyRejected, JourneyResolver
from byflyt.connectors.siri_xml import UnsafeXML, parse_answer
from byflyt.connectors.snapshots import SnapshotConnector
from byflyt.errors import ConfigError, RetriableError
from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_trips
from byflyt.models.base import iso_z
from byflyt.models.envelope import Rejected
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import VehicleSeen
from byflyt.settings import Settings
from byflyt.topics import TRIP_UPDATES, VEHICLES

log = logging.getLogger(__name__)

Kind = Literal["et", "vm"]
DEFAULT_ENDPOINT = "https://api.entur.io/realtime/v1/rest"
DEFAULT_INTERVAL = timedelta(seconds=15)
CHUNK_BYTES = 64 * 1024
SIRI_NS = "http://www.siri.org.uk/siri"
_DELIVERY = {"et": "EstimatedTimetableDelivery", "vm": "VehicleMonitoringDelivery"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- the connector -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SiriItem:
    """What one poll reads: the live endpoint (``data`` None) or a recorded answer."""

    kind: Kind
    location: str
    data: bytes | None = None


@dataclass
class _Page:
    records: list[Record]
    rejected: list[Rejected]
    info: AnswerInfo
    counts: Counter[str]
    outcome: str
    problem: str | None = None
    raw: bytes = b""


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:200].lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start


def check_endpoint(endpoint: str | None, replay: Path | None) -> None:
    """Refuse (ConfigError) both an endpoint and a replay, and an endpoint that is no URL."""
    if endpoint is not None and replay is not None:
        raise ConfigError("--replay", "cannot go with --endpoint", "give one of them")
    if endpoint is not None:
        check_url(endpoint, DEFAULT_ENDPOINT)


class SiriConnector(SnapshotConnector[SiriItem]):
    """Entur SIRI ET (``kind="et"``) or VM (``kind="vm"``) of one dataset (see the module doc).

    ``static`` is the GTFS static feed of the same codespace: its name is the feed of every
    record (so SIRI and GTFS-realtime of one feed share call identities), its stops place
    quays in kommuner. ``rate_per_minute`` feeds the token bucket; ``locator`` places vehicles.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        kind: Kind,
        dataset: str,
        static: StaticFeed,
        endpoint: str | None = DEFAULT_ENDPOINT,
        replay: Path | None = None,
        polls: int | None = None,
        rate_per_minute: float = RATE_PER_MINUTE,
        bucket: TokenBucket | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
        metrics: Metrics | None = None,
        locator: KommuneLocator | None = None,
    ) -> None:
        if replay is not None:
            endpoint = None
        check_endpoint(endpoint, replay)
        if endpoint is None and replay is None:
            raise ConfigError("--endpoint", "no endpoint and no replay", "give one of them")
        self.kind: Kind = kind
        self.name = f"siri-{kind}"
        self.dataset = dataset
        self.source = f"siri:{dataset}"
        self.feed = static.feed
        self.static = static
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.recordings = read_replay(replay, ".xml", polls) if replay is not None else []
        self.replay = replay is not None
        self.bucket = bucket or TokenBucket(rate_per_minute)
        self.clock = clock
        self.metrics = metrics or default_metrics()
        # Staleness only: after the first full answer SIRI sends changes, so how many journeys
        # an answer holds says nothing about an empty feed (the GTFS-RT connector notes counts).
        self.health = FeedHealthLog(self.source, self.metrics)
        if locator is None and kind == "vm":
            locator = KommuneLocator.from_settings(settings)
        self.locator = locator
        self.more_data = False
        self.stopping = threading.Event()
        self._requestor: str | None = None
        self._client = httpx.Client(
            headers={"ET-Client-Name": settings.client_name, "Accept-Encoding": "gzip"},
            timeout=httpx.Timeout(timeout),
        )
        trips = static.trips
        self._trip_route = dict(zip(trips["trip_id"], trips["route_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        self.max_calls = settings.max_calls_per_journey
        self._location = ""
        self._said_local_time = False
        self._said_wall_clock = False
        self.journeys = JourneyResolver(
            static, source=self.source, name=self.name, metrics=self.metrics
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    @property
    def requestor_id(self) -> str | None:
        """The ``requestorId`` in use (None before the first request)."""
        return self._requestor

    def item_id(self, item: SiriItem) -> str:
        """The kind: its checkpoint holds the requestor id and the last response time."""
        return item.kind

    def discover(self, call: Call) -> Discovery[SiriItem]:
        """The endpoint (one request; the runner follows ``MoreData``) or every recording."""
        if not self.replay:
            assert self.endpoint is not None
            return Discovery(items=[SiriItem(self.kind, f"{self.endpoint}/{self.kind}")])
        return Discovery(items=[SiriItem(self.kind, str(p), data) for p, data in self.recordings])

    # -- one page ----------------------------------------------------------------------------
    def poll(self, item: SiriItem, position: str | None, call: Call) -> PollResult:
        """Request (or read) one answer page and turn it into records."""
        self.more_data = False
        self._location = item.location
        if item.data is not None:
            page = self._read_page(iter([item.data]))
        else:
            if self._requestor is None:
                self._requestor = _requestor_of(position) or str(uuid.uuid4())
            page = call(partial(self._request, item.location), f"{self.kind} {item.location}")
        self.metrics.siri_answers.labels(self.source, self.kind, page.outcome).inc()
        rejected = list(page.rejected)
        checkpoint = None
        if page.problem is not None:
            rejected.append(
                self.reject(
                    f"siri_{page.outcome}",
                    f"{page.outcome}: the {self.kind.upper()} answer from {item.location} "
                    f"{page.problem}",
                    page.raw,
                    kind=self.kind,
                    location=item.location,
                )
            )
            if page.outcome in ("malformed", "html") and not self.replay:
                # The server may count the lost changes as delivered: start over in full.
                self._requestor = str(uuid.uuid4())
                self._warn("requestor_reset")
                checkpoint = self._position(None)
        else:
            self.more_data = page.info.more_data and not self.replay
            checkpoint = self._position(page.info.response_at)
        self.health.note(
            self.kind,
            read_at=page.info.response_at
            if self.replay and page.info.response_at
            else self.clock(),
            snapshot_at=page.info.response_at if page.problem is None else None,
            entities=None,
        )
        return PollResult(
            records=page.records,
            rejected=rejected,
            checkpoint=None if self.replay else checkpoint,
            last_data=page.info.response_at if page.problem is None else None,
            counts=page.counts,
        )

    def _position(self, response_at: datetime | None) -> str:
        state = {"requestor_id": self._requestor}
        if response_at is not None:
            state["response_at"] = iso_z(response_at)
        return json.dumps(state, sort_keys=True)

    def _request(self, url: str) -> _Page:
        """One GET through the token bucket, parsed while it streams in."""
        waited = self.bucket.take(self.stopping.wait)
        if waited is None:
            raise RetriableError(f"GET {url}: stopped while waiting for a request token", url=url)
        if waited:
            self.metrics.siri_rate_wait.labels(self.source).inc(waited)
        params = {"datasetId": self.dataset, "requestorId": self._requestor or ""}
        with send_streaming(self._client, "GET", url, params=params) as response:
            content_type = response.headers.get("Content-Type", "").lower()
            chunks = response.iter_bytes(CHUNK_BYTES)
            if "html" in content_type:
                return self._html_page(b"".join(chunks))
            return self._read_page(chunks)

    def _html_page(self, body: bytes) -> _Page:
        return _Page([], [], AnswerInfo(), Counter(), "html", "is an HTML page, not SIRI", body)

    def _read_page(self, chunks: Iterator[bytes]) -> _Page:
        """Parse an answer from its byte chunks; keep what was complete before any fault."""
        info = AnswerInfo()
        records: list[Record] = []
        rejected: list[Rejected] = []
        counts: Counter[str] = Counter()
        head = b""
        first = next(chunks, b"")
        head = first[:512]
        if _looks_like_html(head):
            return self._html_page(first + b"".join(chunks))

        def replayed() -> Iterator[bytes]:
            yield first
            yield from chunks

        other_kind = 0
        try:
            for element in parse_answer(replayed(), info, max_calls=self.max_calls):
                if isinstance(element, SiriJourney) and self.kind == "et":
                    self._journey(element, info, records, rejected, counts)
                elif isinstance(element, SiriActivity) and self.kind == "vm":
                    self._vehicle(element, info, records, rejected, counts)
                else:
                    other_kind += 1
        except UnsafeXML as exc:
            counts["unsafe_xml"] += 1
            return _Page([], [], info, counts, "unsafe_xml", str(exc), head)
        except etree.XMLSyntaxError as exc:
            counts["malformed"] += 1
            return _Page(records, rejected, info, counts, "malformed", f"is not XML: {exc}", head)
        if info.root != "Siri":
            problem = f"has root element {info.root!r}, not Siri"
            return _Page([], [], info, counts, "malformed", problem, head)
        if info.root_namespace != SIRI_NS:
            problem = f"is in XML namespace {info.root_namespace!r}, not SIRI's {SIRI_NS!r}"
            return _Page([], [], info, counts, "wrong_namespace", problem, head)
        expected = _DELIVERY[self.kind]
        if other_kind or (info.deliveries - {expected}) & set(_DELIVERY.values()):
            found = ", ".join(sorted(info.deliveries)) or "no delivery"
            problem = f"holds {found}, not an {expected} (is it the other kind of answer?)"
            return _Page([], [], info, counts, "wrong_delivery", problem, head)
        self._note_local_times(info)
        if info.errors:
            counts["error_conditions"] += 1
            problem = "has an ErrorCondition: " + " | ".join(info.errors)
            return _Page(records, rejected, info, counts, "error_condition", problem, head)
        counts["answers"] += 1
        outcome = "more_data" if info.more_data else "accepted" if records else "empty"
        return _Page(records, rejected, info, counts, outcome)

    def _note_local_times(self, info: AnswerInfo) -> None:
        if not info.local_times:
            return
        self.metrics.siri_local_times.labels(self.source, self.kind).inc()
        if not self._said_local_time:
            self._said_local_time = True
            log.warning(
                "%s: the %s answer from %s has times without a UTC offset; reading them as "
                "Europe/Oslo local time (counted in byflyt_siri_local_time_answers_total)",
                self.source,
                self.kind.upper(),
                self._location,
            )

    def _snapshot_at(self, info: AnswerInfo, own: datetime | None = None) -> datetime:
        """The answer's ResponseTimestamp, else the record's own RecordedAtTime.

        Neither: a live answer is stamped with the time it was read, said once in the log and
        counted (``no_response_timestamp``); a recording has no such time and the record is
        rejected (``no_timestamp``).
        """
        if info.response_at is not None:
            return info.response_at
        if own is not None:
            return own
        if self.replay:
            raise JourneyRejected(
                "no_timestamp",
                "neither a readable ResponseTimestamp nor a RecordedAtTime"
                + (
                    f" (ResponseTimestamp {info.unreadable_response_timestamp!r})"
                    if info.unreadable_response_timestamp
                    else ""
                ),
            )
        self._warn("no_response_timestamp")
        if not self._said_wall_clock:
            self._said_wall_clock = True
            log.warning(
                "%s: an answer from %s has no readable ResponseTimestamp; its records are "
                "stamped with the time they were read",
                self.source,
                self._location,
            )
        info.response_at = self.clock()
        return info.response_at

    def _warn(self, warning: str) -> None:
        self.metrics.siri_warnings.labels(self.source, warning).inc()

    # -- ET ----------------------------------------------------------------------------------
    def _journey(
        self,
        journey: SiriJourney,
        info: AnswerInfo,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> None:
        try:
            if journey.problem is not None:
                raise JourneyRejected(journey.rule, journey.problem)
            state = self.journeys.trip_state(journey, self._snapshot_at(info, journey.recorded_at))
        except JourneyRejected as exc:
            self.metrics.siri_journeys.labels(self.source, "et", "rejected").inc()
            counts["rejected_journeys"] += 1
            code = "too_many_calls" if exc.rule == "too_many_calls" else "invalid_journey"
            rejected.append(
                self.reject(
                    code,
                    f"{exc.rule}: {exc.reason}",
                    journey.raw,
                    rule=exc.rule,
                    journey=journey.journey_ref or "",
                    location=self._location,
                )
            )
            return
        self.metrics.siri_journeys.labels(self.source, "et", state.status).inc()
        records.append(Record(TRIP_UPDATES, state.key, codec_trips.encode(state)))
        counts["trip_states"] += 1

    # -- VM ----------------------------------------------------------------------------------
    def _reject_activity(
        self,
        activity: SiriActivity,
        reason: str,
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> None:
        """Send a vehicle activity to the dead-letter topic as ``invalid_activity``; count it."""
        self.metrics.siri_journeys.labels(self.source, "vm", "rejected").inc()
        rejected.append(
            self.reject("invalid_activity", reason, activity.raw, location=self._location)
        )
        counts["rejected_activities"] += 1

    def _vehicle(
        self,
        activity: SiriActivity,
        info: AnswerInfo,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> None:
        if activity.problem is not None:
            self._reject_activity(activity, f"unreadable: {activity.problem}", rejected, counts)
            return
        if not activity.vehicle_ref:
            self._warn("missing_vehicle_ref")
            return
        try:
            snapshot_at = self._snapshot_at(info, activity.recorded_at)
        except JourneyRejected as exc:
            self._reject_activity(activity, f"{exc.rule}: {exc.reason}", rejected, counts)
            return
        kommune = None
        if activity.lat is not None and activity.lon is not None and self.locator is not None:
            kommune = self.locator.locate(activity.lat, activity.lon)
        route = self._trip_route.get(activity.journey_ref or "") or activity.line_ref or ""
        mode = self._route_mode.get(route) or VEHICLE_MODES.get(
            (activity.vehicle_mode or "").lower(), "other"
        )
        seen = VehicleSeen(
            feed=self.feed,
            snapshot_at=snapshot_at,
            seen_at=activity.recorded_at or snapshot_at,
            vehicle_id=activity.vehicle_ref,
            trip_id=activity.journey_ref,
            mode=mode,
            kommune_nr=kommune,
            occupancy=activity.occupancy,
        )
        self.metrics.siri_journeys.labels(self.source, "vm", "vehicle").inc()
        records.append(Record.of(VEHICLES, seen))
        counts["vehicles"] += 1


def _requestor_of(position: str | None) -> str | None:
    if not position:
        return None
    try:
        value = json.loads(position).get("requestor_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
