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

ET semantics, mapped onto the GTFS-realtime connector's :class:`TripState` so every agent
downstream is shared:

- the journey is ``FramedVehicleJourneyRef`` (``DataFrameRef`` = service date,
  ``DatedVehicleJourneyRef`` = the GTFS ``trip_id``), a bare ``DatedVehicleJourneyRef`` (service
  date: the running date of the static trip nearest to its first aimed time) or, for an
  ``ExtraJourney``, its ``EstimatedVehicleJourneyCode`` (status ``added``); a ref that is a
  train number and date (Bane NOR, ``3520:2018-08-28``) is the static rail trip with that
  ``trip_short_name`` running that day (:mod:`byflyt.connectors.trains`); one that names no
  such trip is rejected (``unknown_train``, ``train_not_running``);
- ``Cancellation`` on the journey: status ``cancelled``, every call of the trip cancelled;
- a known journey is sent whole, on the static feed's calls (stop order, kommune of the quay); a
  SIRI call is matched by ``Order`` (1-based) when that static call has its ``StopPointRef`` (or
  the ref is not a quay the feed knows: railway codes, operator ids), else by ``StopPointRef``
  forward from the previous match; calls without ``Order`` are matched by stop;
- a ``RecordedCall`` is final: served at its ``Actual…`` time (departure; arrival at the last
  stop), else its ``Expected…`` time, else its aimed time with no delay known; an
  ``EstimatedCall`` is not final, its ``Expected…`` time only gives the predicted delay
  (``actual`` stays None so that a prediction already in the past is not counted as served);
- ``Cancellation`` on a call, or its ``DepartureStatus`` (``ArrivalStatus`` at the last stop)
  ``cancelled``: the call is cancelled (``skipped``);
- scheduled = ``AimedDepartureTime`` (``AimedArrivalTime`` at the last stop), else the static
  time; delay = actual − aimed.

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
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Literal

import httpx
import pandas as pd
from lxml import etree

from byflyt.connectors.base import (
    Call,
    Discovery,
    PollResult,
    Record,
)
from byflyt.connectors.feed_health import FeedHealthLog
from byflyt.connectors.gtfs_static import StaticFeed, TripPlan
from byflyt.connectors.http import HTTPRetriableError, SourceError, classify
from byflyt.connectors.replay import read_replay
from byflyt.connectors.siri_xml import (
    AnswerInfo,
    SiriActivity,
    SiriCall,
    SiriJourney,
    UnsafeXML,
    parse_answer,
)
from byflyt.connectors.snapshots import SnapshotConnector
from byflyt.connectors.trains import TrainIndex, TrainNotResolved, TrainRef, parse_train_ref
from byflyt.errors import ConfigError, RetriableError
from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_trips
from byflyt.models.base import Mode, iso_z
from byflyt.models.envelope import Rejected
from byflyt.models.geo import KommuneLocator
from byflyt.models.transit import CallRealtime, TripStatus, VehicleSeen
from byflyt.settings import Settings
from byflyt.topics import TRIP_UPDATES, VEHICLES

log = logging.getLogger(__name__)

Kind = Literal["et", "vm"]
DEFAULT_ENDPOINT = "https://api.entur.io/realtime/v1/rest"
DEFAULT_INTERVAL = timedelta(seconds=15)
RATE_PER_MINUTE = 4.0
CHUNK_BYTES = 64 * 1024
SIRI_NS = "http://www.siri.org.uk/siri"
_DELIVERY = {"et": "EstimatedTimetableDelivery", "vm": "VehicleMonitoringDelivery"}
_SEEN_CHANGES_MAX = 100_000  # platform changes remembered so that repeats count once
_MAX_REF = 256  # the longest journey, line or stop ref a record carries

_VEHICLE_MODES: dict[str, Mode] = {
    "bus": "bus",
    "coach": "coach",
    "rail": "rail",
    "tram": "tram",
    "metro": "metro",
    "water": "ferry",
    "ferry": "ferry",
    "air": "air",
    "taxi": "taxi",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TokenBucket:
    """At most ``rate_per_minute`` requests a minute on average, bursts up to ``capacity``.

    ``take`` waits (through ``wait``, which returns True when the wait was interrupted) until a
    token is there: the connector never asks faster than the source allows, whatever its poll
    interval or how many ``MoreData`` pages follow each other.
    """

    def __init__(
        self,
        rate_per_minute: float = RATE_PER_MINUTE,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be positive, not {rate_per_minute}")
        self.rate = rate_per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1.0, rate_per_minute))
        self.clock = clock
        self.tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait_time(self) -> float:
        """Seconds until a token is there (0: now)."""
        with self._lock:
            self._refill()
            return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def try_take(self) -> bool:
        """Take a token if one is there."""
        with self._lock:
            self._refill()
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False

    def take(self, wait: Callable[[float], bool]) -> float | None:
        """Take a token, waiting for it; the seconds waited, or None when interrupted."""
        waited = 0.0
        while not self.try_take():
            delay = self.wait_time()
            if wait(delay):
                return None
            waited += delay
        return waited


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


@dataclass(frozen=True)
class _StaticTrip:
    """A static trip on one date: route, quays, sequences and scheduled times (plain values)."""

    route_id: str
    stops: list[str]
    sequences: list[int]
    times: list[datetime | None]

    @classmethod
    def of(cls, plan: TripPlan | None) -> _StaticTrip | None:
        if plan is None:
            return None
        last = len(plan.stops) - 1
        times: list[datetime | None] = []
        for i, (arrival, departure) in enumerate(zip(plan.arrivals, plan.departures, strict=True)):
            first, second = (arrival, departure) if i == last else (departure, arrival)
            times.append(first if first is not None else second)
        return cls(
            route_id=plan.route_id,
            stops=list(plan.stops),
            sequences=list(plan.sequences),
            times=times,
        )


class _JourneyRejected(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(reason)


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:200].lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start


def check_endpoint(endpoint: str | None, replay: Path | None) -> None:
    """Refuse (ConfigError) both or neither of an endpoint and a replay, and a bad URL."""
    if endpoint is not None and replay is not None:
        raise ConfigError("--replay", "cannot go with --endpoint", "give one of them")
    if endpoint is None:
        return
    try:
        parsed = httpx.URL(endpoint) if "://" in endpoint else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            "--endpoint", f"{endpoint!r} is not an http(s) URL", f"e.g. {DEFAULT_ENDPOINT}"
        )


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
        self._trip_service = dict(zip(trips["trip_id"], trips["service_id"], strict=True))
        self._trip_route = dict(zip(trips["trip_id"], trips["route_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        stops = static.stops
        self._stop_kommune: dict[str, str | None] = {
            str(s): (None if pd.isna(k) else str(k))
            for s, k in zip(stops["stop_id"], stops["kommune_nr"], strict=True)
        }
        self._stop_parent: dict[str, str] = {
            str(s): str(p)
            for s, p in zip(stops["stop_id"], stops["parent_station"], strict=True)
            if not pd.isna(p) and p
        }
        self.max_calls = settings.max_calls_per_journey
        self._location = ""
        self._said_local_time = False
        self._said_wall_clock = False
        self._changes_seen: set[tuple[str, date, int]] = set()
        self._static_trips: dict[int, tuple[TripPlan, _StaticTrip | None]] = {}
        self._trains: TrainIndex | None = None

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
        try:
            with self._client.stream("GET", url, params=params) as response:
                verdict = classify(response)
                if verdict.verdict == "retriable":
                    assert verdict.status_class is not None
                    raise HTTPRetriableError(
                        f"GET {url}: {verdict.detail}",
                        url=url,
                        status=verdict.status,
                        status_class=verdict.status_class,
                        retry_after=verdict.retry_after,
                    )
                if verdict.verdict == "fatal":
                    raise SourceError(
                        f"GET {url}: {verdict.detail}",
                        url=url,
                        status=verdict.status,
                        status_class=verdict.status_class,
                    )
                content_type = response.headers.get("Content-Type", "").lower()
                chunks = response.iter_bytes(CHUNK_BYTES)
                if "html" in content_type:
                    return self._html_page(b"".join(chunks))
                return self._read_page(chunks)
        except httpx.HTTPError as exc:
            verdict = classify(exc)
            message = f"GET {url}: {verdict.detail}"
            if verdict.verdict == "retriable":
                assert verdict.status_class is not None
                raise HTTPRetriableError(
                    message,
                    url=url,
                    status=None,
                    status_class=verdict.status_class,
                    retry_after=None,
                ) from exc
            raise SourceError(message, url=url) from exc

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
            raise _JourneyRejected(
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
                raise _JourneyRejected(journey.rule, journey.problem)
            state = self.trip_state(journey, self._snapshot_at(info, journey.recorded_at))
        except _JourneyRejected as exc:
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

    def trip_state(self, journey: SiriJourney, snapshot_at: datetime) -> codec_trips.Trip:
        """The trip state of one journey, as its record (raises ``_JourneyRejected``)."""
        trip_id = journey.journey_ref
        if not trip_id:
            raise _JourneyRejected(
                "no_journey_ref",
                "no DatedVehicleJourneyRef, FramedVehicleJourneyRef or EstimatedVehicleJourneyCode",
            )
        known = trip_id in self._trip_service
        train = None if known or journey.extra else parse_train_ref(trip_id)
        if train is not None:
            trip_id, service_date = self._train_trip(train, journey)
            known = True
        elif not known and not journey.extra:
            raise _JourneyRejected(
                "unknown_journey",
                f"journey {trip_id!r} is not in static feed {self.feed!r} and not an ExtraJourney",
            )
        else:
            service_date = journey.service_date or self._service_date(trip_id, journey, known)
        status: TripStatus = "cancelled" if journey.cancelled else "scheduled"
        if journey.extra and not journey.cancelled:
            status = "added"
        if known:
            planned = self._static_trip(trip_id, service_date)
            if planned is None:
                raise _JourneyRejected(
                    "not_running", f"journey {trip_id!r} does not run on {service_date}"
                )
            route_id = planned.route_id
            calls = self._known_calls(planned, journey.calls, (trip_id, service_date))
        else:
            route_id = journey.line_ref or ""
            if not route_id:
                raise _JourneyRejected("no_line_ref", f"ExtraJourney {trip_id!r} has no LineRef")
            calls = self._extra_calls(journey.calls)
        mode = self._route_mode.get(route_id) or _VEHICLE_MODES.get(
            (journey.vehicle_mode or "").lower(), "other"
        )
        _check_span(calls, snapshot_at)
        occupancy = journey.occupancy or next(
            (c.occupancy for c in reversed(journey.calls) if c.recorded and c.occupancy), None
        )
        if any(len(ref) > _MAX_REF for ref in (trip_id, route_id)) or any(
            len(c.stop_id) > _MAX_REF for c in calls
        ):
            raise _JourneyRejected("ref_too_long", f"a ref is longer than {_MAX_REF} characters")
        return codec_trips.Trip(
            feed=self.feed,
            snapshot_at=snapshot_at,
            service_date=service_date,
            trip_id=trip_id,
            route_id=route_id,
            mode=mode,
            status=status,
            vehicle_id=journey.vehicle_ref,
            occupancy=occupancy,
            calls=calls,
        )

    def _train_trip(self, train: TrainRef, journey: SiriJourney) -> tuple[str, date]:
        """The static trip and service date of a journey named by train number (Bane NOR).

        The date is the ref's own (``3520:2018-08-28``), else ``DataFrameRef``, else the
        Europe/Oslo date of the first aimed time. Of several trips of the train that day the one
        whose stops (or their stations) the journey's calls name most is kept.
        """
        if self._trains is None:
            self._trains = TrainIndex(self.static)
        outcome = self.metrics.siri_train_refs
        day = train.service_date or journey.service_date
        if day is None:
            aimed = next(
                (t for c in journey.calls for t in (c.aimed_departure, c.aimed_arrival) if t), None
            )
            if aimed is None:
                outcome.labels(self.source, "no_service_date").inc()
                raise _JourneyRejected(
                    "no_service_date", f"train {train.number}: no date, no aimed times"
                )
            day = aimed.astimezone(self.static.timezone).date()
        try:
            trips = self._trains.resolve(train.number, day)
        except TrainNotResolved as exc:
            outcome.labels(self.source, exc.rule).inc()
            raise _JourneyRejected(exc.rule, exc.reason) from None
        outcome.labels(self.source, "resolved").inc()
        if len(trips) == 1:
            return trips[0], day
        refs = {c.stop_ref for c in journey.calls}
        refs |= {self._stop_parent[r] for r in refs if r in self._stop_parent}

        def named(trip_id: str) -> int:
            planned = self._static_trip(trip_id, day)
            stops = planned.stops if planned is not None else []
            return sum(1 for s in stops if s in refs or self._stop_parent.get(s) in refs)

        return max(trips, key=named), day

    def _service_date(self, trip_id: str, journey: SiriJourney, known: bool) -> date:
        """No DataFrameRef: the running date whose static first call is nearest the aimed one."""
        aimed = next(
            (t for c in journey.calls for t in (c.aimed_departure, c.aimed_arrival) if t), None
        )
        if aimed is None:
            raise _JourneyRejected("no_service_date", "no DataFrameRef and no aimed times")
        local = aimed.astimezone(self.static.timezone).date()
        if not known:
            return local
        dates = [
            d
            for d in self.static.service_dates(self._trip_service[trip_id])
            if abs((d - local).days) <= 1
        ]
        if not dates:
            raise _JourneyRejected("not_running", f"journey {trip_id!r} does not run near {local}")

        def distance(day: date) -> float:
            planned = self._static_trip(trip_id, day)
            first = planned.times[0] if planned is not None else None
            return abs((first - aimed).total_seconds()) if first is not None else float("inf")

        return min(dates, key=distance)

    def _sibling(self, planned: str, actual: str) -> bool:
        """Another quay of the planned quay's stop place (a platform change)."""
        parent = self._stop_parent.get(planned)
        return parent is not None and planned != actual and self._stop_parent.get(actual) == parent

    def _match(self, stops: list[str], calls: Iterable[SiriCall]) -> dict[int, SiriCall]:
        """Static call index → its SIRI call (see the module docstring for the rule)."""
        matched: dict[int, SiriCall] = {}
        last = -1
        for siri in calls:
            index: int | None = None
            at = siri.order - 1 if siri.order is not None else None
            in_range = at is not None and last < at < len(stops)
            ref = siri.stop_ref
            if in_range and stops[at] == ref:  # type: ignore[index]
                index = at
            elif ref in stops[last + 1 :]:
                index = stops.index(ref, last + 1)
            elif in_range and self._sibling(stops[at], ref):  # type: ignore[index]
                index = at
            elif ref in self._stop_parent and at is None:
                index = next(
                    (i for i in range(last + 1, len(stops)) if self._sibling(stops[i], ref)), None
                )
            elif in_range and ref not in self._stop_kommune:
                self._warn("stop_ref_mismatch")
                index = at
            if index is None:
                self._warn("stop_not_on_journey")
                continue
            matched[index] = siri
            last = index
        return matched

    def _static_trip(self, trip_id: str, service_date: date) -> _StaticTrip | None:
        """The static calls of a trip on a date (None: not running); the feed caches its plans."""
        plan = self.static.trip_plan(trip_id, service_date)
        if plan is None:
            return None
        # Kept per plan object (and holding it): the feed keeps one per trip and date.
        kept = self._static_trips.get(id(plan))
        if kept is None or kept[0] is not plan:
            if len(self._static_trips) >= _SEEN_CHANGES_MAX:
                self._static_trips.clear()
            kept = self._static_trips[id(plan)] = (plan, _StaticTrip.of(plan))
        return kept[1]

    def _known_calls(
        self,
        planned: _StaticTrip,
        siri_calls: tuple[SiriCall, ...],
        run: tuple[str, date],
    ) -> list[codec_trips.Call]:
        matched = self._match(planned.stops, siri_calls)
        calls: list[codec_trips.Call] = []
        last_index = len(planned.stops) - 1
        for i, (stop_id, sequence) in enumerate(zip(planned.stops, planned.sequences, strict=True)):
            siri = matched.get(i)
            if siri is not None and self._sibling(stop_id, siri.stop_ref):
                # The same call at another platform: keep the quay it was actually served at.
                stop_id = siri.stop_ref
                self._platform_change((*run, sequence))
            state = _call_state(
                siri,
                sequence,
                stop_id,
                self._kommune(stop_id) or self._kommune(planned.stops[i]),
                i == last_index,
                planned.times[i],
            )
            if state is None:
                raise _JourneyRejected("static_times", f"static call {sequence} has no time")
            calls.append(state)
        return calls

    def _extra_calls(self, siri_calls: tuple[SiriCall, ...]) -> list[codec_trips.Call]:
        calls: list[codec_trips.Call] = []
        previous = -1
        for n, siri in enumerate(siri_calls):
            sequence = siri.order - 1 if siri.order is not None else previous + 1
            if sequence <= previous or not siri.stop_ref:
                self._warn("stop_not_on_journey")
                continue
            last = n == len(siri_calls) - 1
            state = _call_state(
                siri, sequence, siri.stop_ref, self._kommune(siri.stop_ref), last, None
            )
            if state is not None:
                calls.append(state)
                previous = sequence
        return calls

    def _kommune(self, stop_id: str) -> str | None:
        return self._stop_kommune.get(stop_id)

    def _platform_change(self, call: tuple[str, date, int]) -> None:
        """Count a platform change once per call, however many answers repeat it."""
        if call in self._changes_seen:
            return
        if len(self._changes_seen) >= _SEEN_CHANGES_MAX:
            self._changes_seen.clear()
        self._changes_seen.add(call)
        self.metrics.platform_changes.labels(self.feed, self.name).inc()

    # -- VM ----------------------------------------------------------------------------------
    def _vehicle(
        self,
        activity: SiriActivity,
        info: AnswerInfo,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> None:
        if activity.problem is not None:
            self.metrics.siri_journeys.labels(self.source, "vm", "rejected").inc()
            rejected.append(
                self.reject(
                    "invalid_activity",
                    f"unreadable: {activity.problem}",
                    activity.raw,
                    location=self._location,
                )
            )
            counts["rejected_activities"] += 1
            return
        if not activity.vehicle_ref:
            self._warn("missing_vehicle_ref")
            return
        try:
            snapshot_at = self._snapshot_at(info, activity.recorded_at)
        except _JourneyRejected as exc:
            self.metrics.siri_journeys.labels(self.source, "vm", "rejected").inc()
            rejected.append(
                self.reject(
                    "invalid_activity",
                    f"{exc.rule}: {exc.reason}",
                    activity.raw,
                    location=self._location,
                )
            )
            counts["rejected_activities"] += 1
            return
        kommune = None
        if activity.lat is not None and activity.lon is not None and self.locator is not None:
            kommune = self.locator.locate(activity.lat, activity.lon)
        route = self._trip_route.get(activity.journey_ref or "") or activity.line_ref or ""
        mode = self._route_mode.get(route) or _VEHICLE_MODES.get(
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


def _call_state(
    siri: SiriCall | None,
    sequence: int,
    stop_id: str,
    kommune: str | None,
    last: bool,
    static_time: datetime | None,
) -> codec_trips.Call | None:
    """One call: scheduled (aimed, else static), final actual time, delay; None without times."""
    if siri is None:
        if static_time is None:
            return None
        return codec_trips.Call(sequence, stop_id, kommune, static_time)

    if not last and _cut_short_here(siri):
        # The journey ends here now: the arrival was served, only the departure is cancelled.
        last = True
        siri = siri._replace(departure_status=None)

    def pick(departure: datetime | None, arrival: datetime | None) -> datetime | None:
        return (arrival or departure) if last else (departure or arrival)

    aimed = pick(siri.aimed_departure, siri.aimed_arrival)
    expected = pick(siri.expected_departure, siri.expected_arrival)
    actual_time = pick(siri.actual_departure, siri.actual_arrival)
    scheduled = aimed or static_time or actual_time or expected
    if scheduled is None:
        return None
    status = (siri.arrival_status if last else siri.departure_status) or (
        siri.departure_status if last else siri.arrival_status
    )
    realtime: CallRealtime = "scheduled"
    actual: datetime | None = None
    delay: int | None = None
    if siri.cancelled or status == "cancelled":
        realtime = "skipped"
    else:
        known = actual_time or expected
        if known is not None:
            delay = round((known - scheduled).total_seconds())
        if siri.recorded:
            actual = known or scheduled
    return codec_trips.Call(sequence, stop_id, kommune, scheduled, delay, actual, realtime)


#: How far a call's time may lie from its answer's time (a journey spans at most a day or two).
MAX_TIME_SPAN = timedelta(days=3)


def _check_span(calls: list[codec_trips.Call], snapshot_at: datetime) -> None:
    """Reject a journey whose times lie implausibly far from the answer's own time."""
    for call in calls:
        if abs(call.scheduled - snapshot_at) > MAX_TIME_SPAN:
            raise _JourneyRejected(
                "time_out_of_range",
                f"call {call.stop_sequence} is scheduled at {iso_z(call.scheduled)}, more than "
                f"{MAX_TIME_SPAN.days} days from the answer's time {iso_z(snapshot_at)}",
            )


def _cut_short_here(siri: SiriCall) -> bool:
    """A call whose departure is cancelled but whose arrival is not: a new last stop."""
    return (
        not siri.cancelled
        and siri.departure_status == "cancelled"
        and siri.arrival_status != "cancelled"
        and (siri.aimed_arrival or siri.expected_arrival or siri.actual_arrival) is not None
    )


def _requestor_of(position: str | None) -> str | None:
    if not position:
        return None
    try:
        value = json.loads(position).get("requestor_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
