"""Eco-Counter (Eco-Visio): a kommune's own bicycle and pedestrian counters, in two dialects.

**API v1** (``/api/1.0``): an OAuth2 client-credentials token from ``/token`` beside it, sent as
a bearer token and fetched again before it expires (and once more when the API answers 401 to
one it revoked). ``/site`` lists the sites with their channels (``userType`` 1 pedestrian, 2
bicycle; ``interval`` 15 or 60 minutes; direction ``sens``); ``/data/site/{channel}`` gives
counts for ``begin`` (included) to ``end`` (excluded) with ``complete=true``, so a gap is
``null``: missing, never zero. 15-minute channels are asked for at ``step=15m`` so that an hour
with missing quarters gets coverage = the share present; hourly channels at ``step=hour``.

**API v2** (``X-API-KEY``): ``/api/v2/sites`` (paged) lists sites with ``location``,
``firstData``, ``lastData``, ``granularity`` and ``travelModes``; ``/api/v2/history/traffic/raw``
gives each flow (travel mode and direction) at ``granularity=PT1H``.

Both send and read times as the site's local time (Europe/Oslo), with or without an offset. A
site becomes one point per mode (``<site>-bicycle``, ``<site>-pedestrian``); its channels or
flows are summed over directions; its kommune comes from its coordinates. Requests go through
a token bucket of the fair-use limits (about 100 a minute and 5,000 a day).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from byflyt.connectors.base import Call, Discovery, PollResult, Record, Window
from byflyt.connectors.counters import (
    HOUR,
    HourSums,
    HttpCounterConnector,
    LocalTimes,
    count_record,
    fetched,
    hours_between,
    is_duplicate,
    local_naive,
    point_id,
    read_checkpoint,
)
from byflyt.connectors.eco_counter_sites import (
    V2_MODES,
    V2_NAMES,
    Api,
    Channel,
    EcoSite,
    credentials,
    read_site,
)
from byflyt.connectors.http import SourceError, base_url, json_body, raw_json, send
from byflyt.connectors.rate_limit import TokenBucket
from byflyt.errors import RejectedInput
from byflyt.models.base import Mode, hour_floor, iso_z
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Rejected
from byflyt.models.kommuner import get_region
from byflyt.settings import Settings
from byflyt.topics import BIKE_POINTS

log = logging.getLogger(__name__)

SOURCE = "eco-counter"
DEFAULT_ENDPOINTS: dict[Api, str] = {
    "v1": "https://apieco.eco-counter-tools.com/",
    "v2": "https://api.eco-counter.com/",
}
MAX_SPAN = timedelta(days=31)  # one data request's range; a backfill asks month by month
PAGE_SIZE = 100
RATE_PER_MINUTE = 100.0
RATE_PER_DAY = 5000.0
TOKEN_MARGIN_S = 60.0


class FairUse:
    """Eco-Counter's fair-use limits as two token buckets: per minute and per day."""

    def __init__(self, per_minute: float = RATE_PER_MINUTE, per_day: float = RATE_PER_DAY) -> None:
        self.minute = TokenBucket(per_minute)
        self.day = TokenBucket(per_day / (24 * 60), capacity=per_day)

    def take(self, wait: Callable[[float], bool]) -> None:
        """Wait for a request of both budgets (returns at once when ``wait`` is interrupted)."""
        if self.day.take(wait) is not None:
            self.minute.take(wait)


def _count(value: Any) -> int | None:
    """A count: a non-negative whole number, or None (missing)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"count {value!r} is not a whole number")
    if value < 0:
        raise ValueError(f"count {value!r} is negative")
    return int(value)


class EcoCounterConnector(HttpCounterConnector[EcoSite]):
    """Eco-Counter sites of a region and their hourly counts, per mode (v1 or v2 dialect).

    ``**polling``: the polling options of :class:`~byflyt.connectors.counters.HttpCounterConnector`.
    """

    name = "eco-counter"
    source = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        region: str,
        api: Api | None = None,
        endpoint: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        fair_use: FairUse | None = None,
        page_size: int = PAGE_SIZE,
        **polling: Any,
    ) -> None:
        self.api: Api = api or settings.eco_counter_api
        self.endpoint = base_url(endpoint or DEFAULT_ENDPOINTS[self.api], DEFAULT_ENDPOINTS["v1"])
        self.credentials = credentials(settings, self.api)
        self.region = get_region(region, settings.regions_file)
        super().__init__(settings, {"accept": "application/json"}, **polling)
        self.monotonic = monotonic
        self.fair_use = fair_use or FairUse()
        self.page_size = page_size
        self._stop = threading.Event()
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        """Close the HTTP connection pool and stop waiting for the rate limit."""
        self._stop.set()
        super().close()

    def item_id(self, item: EcoSite) -> str:
        """The site id."""
        return item.id

    # -- requests ----------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        if self.api == "v2":
            return {"X-API-KEY": self.credentials[0]}
        if self._token is None or self.monotonic() >= self._token_expires:
            self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    def _fetch_token(self) -> None:
        """A new client-credentials token, kept until shortly before it expires."""
        url = self.endpoint + "token"
        self.fair_use.take(self._stop.wait)
        client_id, secret = self.credentials
        response = send(
            self._client,
            "POST",
            url,
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        body = json_body(response, "POST", url)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RejectedInput(
                "the token answer has no access_token", source=SOURCE, raw=raw_json(body)
            )
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        self._token_expires = self.monotonic() + lifetime - min(TOKEN_MARGIN_S, lifetime / 10)

    def _get(self, path: str, params: dict[str, Any] | list[tuple[str, str]]) -> Any:
        url = self.endpoint + path
        self.fair_use.take(self._stop.wait)
        try:
            response = send(self._client, "GET", url, params=params, headers=self._auth())
        except SourceError as exc:
            if exc.status != 401 or self.api != "v1":
                raise
            # The token was revoked or expired early: one fresh token, one more try.
            log.info("%s: HTTP 401 to a token; fetching a new one", SOURCE)
            self._token = None
            self.fair_use.take(self._stop.wait)
            response = send(self._client, "GET", url, params=params, headers=self._auth())
        return json_body(response, "GET", url)

    # -- sites -------------------------------------------------------------------------------
    def discover(self, call: Call) -> Discovery[EcoSite]:
        """The region's sites (one ``bike.points`` record per mode); bad entries rejected."""
        entries = call(self._sites, "sites")
        discovery: Discovery[EcoSite] = Discovery(items=[])
        duplicates = 0
        for entry in entries:
            try:
                site = read_site(entry, self.api, self.locate)
            except (ValueError, TypeError) as exc:
                discovery.rejected.append(self.reject("invalid_point", str(exc), raw_json(entry)))
                continue
            if site is None or site.kommune_nr not in self.region:
                continue
            kept = tuple(
                c
                for c in site.channels
                if not is_duplicate(self.settings, SOURCE, point_id(site.id, c.mode))
            )
            duplicates += len(site.modes) - len({c.mode for c in kept})
            if not kept:
                continue
            site = EcoSite(**{**site.__dict__, "channels": kept})
            discovery.items.append(site)
            for mode in site.modes:
                discovery.records.append(Record.of(BIKE_POINTS, self._point(site, mode)))
        log.info(
            "%s %s: %d sites in %s (%d points counted by another source)",
            SOURCE,
            self.api,
            len(discovery.items),
            self.region.name,
            duplicates,
        )
        return discovery

    def _sites(self) -> list[Any]:
        if self.api == "v1":
            body = self._get("api/1.0/site", {})
            if not isinstance(body, list):
                raise RejectedInput(
                    "the site list is not a JSON array", source=SOURCE, raw=raw_json(body)
                )
            return body
        sites: list[Any] = []
        page = 1
        while True:
            body = self._get("api/v2/sites", {"page": page, "pageSize": self.page_size})
            if not isinstance(body, list):
                raise RejectedInput(
                    "the site page is not a JSON array", source=SOURCE, raw=raw_json(body)
                )
            sites.extend(body)
            if len(body) < self.page_size:
                return sites
            page += 1

    @staticmethod
    def _point(site: EcoSite, mode: Mode) -> CountPoint:
        return CountPoint(
            source=SOURCE,
            point_id=point_id(site.id, mode),
            name=f"{site.name} ({mode})" if len(site.modes) > 1 else site.name,
            kommune_nr=site.kommune_nr,
            mode=mode,
            lat=site.lat,
            lon=site.lon,
            first_data=site.first_data,
            latest_data=site.last_data,
        )

    # -- counts ------------------------------------------------------------------------------
    def poll(self, item: EcoSite, position: str | None, call: Call) -> PollResult:
        """Every hour of the window per mode: counted, partly counted, or missing (None)."""
        checkpoint = read_checkpoint(position, SOURCE)
        window = self.hours.window(checkpoint)
        retrieved_at = self.clock()
        sums: dict[Mode, HourSums] = {mode: HourSums() for mode in item.modes}
        rejected: list[Rejected] = []
        delivered: datetime | None = None
        since = window.since
        while since < window.until:
            chunk = Window(since, min(window.until, since + MAX_SPAN))
            if self.api == "v1":
                for channel in item.channels:
                    what = f"data of {item.id} channel {channel.id} from {iso_z(chunk.since)}"
                    rows = call(partial(self._v1_rows, channel, chunk), what)
                    last = self._add(item, channel, rows, chunk, sums[channel.mode], rejected)
                    delivered = max(filter(None, (delivered, last)), default=None)
            else:
                what = f"data of {item.id} from {iso_z(chunk.since)}"
                flows = call(partial(self._v2_flows, item, chunk), what)
                last = self._add_flows(item, flows, chunk, sums, rejected)
                delivered = max(filter(None, (delivered, last)), default=None)
            since = chunk.until
        observations: list[CountObservation] = []
        for mode, hours in sums.items():
            observations += hours.observations(
                source=SOURCE,
                point=point_id(item.id, mode),
                kommune_nr=item.kommune_nr,
                mode=mode,
                retrieved_at=retrieved_at,
            )
        counted = max((o.start for o in observations if o.volume is not None), default=None)
        moves = delivered is not None and (
            checkpoint is None or window.since <= checkpoint < delivered
        )
        asked = [
            fetched(SOURCE, point_id(item.id, m), item.kommune_nr, m, *window.span, retrieved_at)
            for m in sums
        ]
        return PollResult(
            records=[count_record(o) for o in observations] + asked,
            rejected=rejected,
            checkpoint=iso_z(delivered) if moves and delivered is not None else None,
            last_data=counted,
            counts=Counter(
                observations=len(observations),
                missing_hours=sum(1 for o in observations if o.volume is None),
            ),
        )

    def _v1_rows(self, channel: Channel, chunk: Window) -> Any:
        params = {
            "begin": local_naive(chunk.since),
            "end": local_naive(chunk.until),
            "step": "15m" if channel.interval == 15 else "hour",
            "complete": "true",
        }
        return self._get(f"api/1.0/data/site/{channel.id}", params)

    def _v2_flows(self, item: EcoSite, chunk: Window) -> Any:
        start, end = local_naive(chunk.since), local_naive(chunk.until)
        params = [
            ("siteId", item.id),
            ("startDate", start[:10]),
            ("endDate", end[:10]),
            ("startTime", start[11:16]),
            ("endTime", end[11:16]),
            ("granularity", "PT1H"),
        ] + [("travelModes", V2_NAMES[mode]) for mode in item.modes]
        return self._get("api/v2/history/traffic/raw", params)

    def _add(
        self,
        item: EcoSite,
        channel: Channel,
        rows: Any,
        chunk: Window,
        sums: HourSums,
        rejected: list[Rejected],
    ) -> datetime | None:
        """Add one channel's rows (``date``, ``counts``); return the end of its last hour."""
        if not isinstance(rows, list):
            raise RejectedInput(
                "the data answer is not a JSON array", source=SOURCE, raw=raw_json(rows)
            )
        return self._add_series(item, channel, rows, "date", chunk, sums, rejected)

    def _add_flows(
        self,
        item: EcoSite,
        flows: Any,
        chunk: Window,
        sums: dict[Mode, HourSums],
        rejected: list[Rejected],
    ) -> datetime | None:
        if not isinstance(flows, list):
            raise RejectedInput(
                "the history answer is not a JSON array", source=SOURCE, raw=raw_json(flows)
            )
        last: datetime | None = None
        for flow in flows:
            mode = V2_MODES.get(str(flow.get("travelMode"))) if isinstance(flow, dict) else None
            if mode is None or mode not in sums:
                continue
            data = flow.get("data")
            if not isinstance(data, list):
                rejected.append(
                    self.reject("invalid_row", "a flow has no data array", raw_json(flow))
                )
                continue
            channel = Channel(item.id, mode, 60, str(flow.get("direction", "")))
            # gapFilling is off: an hour of the site's data span without a row is missing.
            first = max(chunk.since, hour_floor(item.first_data or chunk.since))
            stop = min(chunk.until, hour_floor(item.last_data or chunk.until) + HOUR)
            for hour in hours_between(first, stop):
                sums[mode].expect(hour)
            end = self._add_series(
                item, channel, data, "timestamp", chunk, sums[mode], rejected, expect=False
            )
            last = max(filter(None, (last, end)), default=None)
        return last

    def _add_series(
        self,
        item: EcoSite,
        channel: Channel,
        rows: list[Any],
        time_field: str,
        chunk: Window,
        sums: HourSums,
        rejected: list[Rejected],
        *,
        expect: bool = True,
    ) -> datetime | None:
        last: datetime | None = None
        expected: set[datetime] = set()
        times = LocalTimes()
        for row in rows:
            try:
                if not isinstance(row, dict):
                    raise ValueError("a row is not a JSON object")
                start = times.read(row.get(time_field))
                count = _count(row.get("counts"))
                if not chunk.since <= start < chunk.until:
                    raise ValueError(
                        f"time {iso_z(start)} is outside the range asked for "
                        f"[{iso_z(chunk.since)}, {iso_z(chunk.until)})"
                    )
            except ValueError as exc:
                rejected.append(
                    self.reject("invalid_row", str(exc), raw_json(row), point_id=item.id)
                )
                continue
            hour = hour_floor(start)
            if expect and hour not in expected:
                expected.add(hour)
                sums.expect(hour)
            sums.add(start, channel.interval, count)
            last = max(filter(None, (last, hour + HOUR)), default=None)
        return last
