"""A local server that answers like Eco-Counter's APIs v1 and v2, from a synthetic dataset.

v1: ``POST /token`` (client credentials in HTTP Basic auth) gives a bearer token that expires
after ``token_seconds``, after ``token_uses`` requests, or at
:meth:`EcoCounterServer.expire_tokens`; an expired token is answered with 401 in
the API gateway's shape; ``GET /api/1.0/site`` lists sites with their channels;
``GET /api/1.0/data/site/{id}`` answers ``[{"date", "counts"}]`` for ``begin`` (included) to
``end`` (excluded) at ``step`` 15m or hour, gaps ``null`` with ``complete=true``. Dates are
local (Europe/Oslo) time, written with an offset (``+0200``) for some sites and without for
others, as the sites' settings make the real API do.

v2 (``X-API-KEY``): ``GET /api/v2/sites?page=&pageSize=`` and
``GET /api/v2/history/traffic/raw`` (flows per travel mode and direction, ``PT1H``, hours
without data left out: ``gapFilling`` off).

Run it standalone with ``python -m byflyt.samples.eco_counter_server``.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from byflyt.clock import OSLO
from byflyt.samples.counters import (
    HOUR,
    SYNTHETIC_NOTICE,
    EcoChannel,
    EcoCounterDataset,
    EcoSite,
    eco_counter_week,
)
from byflyt.samples.json_server import Answer, JsonServer, Request, serve_main

USER_TYPES = {1: "pedestrian", 2: "bike", 4: "car"}
_INVALID_TOKEN = {
    "code": "900901",
    "message": "Invalid Credentials",
    "description": "Invalid Credentials. Make sure you have provided the correct security "
    "credentials",
}


def _local(at: datetime, offsets: bool) -> str:
    local = at.astimezone(OSLO)
    if not offsets:
        return local.replace(tzinfo=None).isoformat(timespec="seconds")
    return local.strftime("%Y-%m-%dT%H:%M:%S%z")  # +0200, as the v1 API writes it


def _read(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=OSLO)
    return value.astimezone(UTC)


class EcoCounterServer(JsonServer):
    """The dataset over HTTP in both dialects. ``client`` is ``(client_id, secret)``."""

    def __init__(
        self,
        dataset: EcoCounterDataset,
        *,
        client: tuple[str, str] = ("byflyt", "hemmelig"),
        api_key: str = "nokkel",
        token_seconds: float = 3600.0,
        token_uses: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.dataset = dataset
        self.client = client
        self.api_key = api_key
        self.token_seconds = token_seconds
        self.token_uses = token_uses
        self._tokens: dict[str, float] = {}
        self._uses: dict[str, int] = {}
        self._token_lock = threading.Lock()

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (the next request with one gets 401)."""
        with self._token_lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    @property
    def tokens_issued(self) -> int:
        """How many tokens were issued."""
        with self._token_lock:
            return len(self._tokens)

    # -- routing -----------------------------------------------------------------------------
    def answer(self, request: Request) -> Answer:
        """The v1 or v2 answer."""
        path = request.path
        if path == "/token" and request.method == "POST":
            return self._token(request)
        if path.startswith("/api/1.0/"):
            if not self._bearer_ok(request):
                return 401, {"fault": _INVALID_TOKEN}
            if path == "/api/1.0/site":
                return 200, [self._v1_site(s) for s in self.dataset.sites]
            match = re.fullmatch(r"/api/1\.0/data/site/(\d+)", path)
            if match:
                return self._v1_data(int(match.group(1)), request)
        if path.startswith("/api/v2/"):
            if request.headers.get("x-api-key") != self.api_key:
                return 401, {"message": "Unauthorized: invalid or missing X-API-KEY"}
            if path == "/api/v2/sites":
                return self._v2_sites(request)
            if path == "/api/v2/history/traffic/raw":
                return self._v2_history(request)
        return 404, {"message": f"no resource at {path}"}

    # -- auth --------------------------------------------------------------------------------
    def _token(self, request: Request) -> Answer:
        expected = base64.b64encode(":".join(self.client).encode()).decode()
        form = request.body.decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, {
                "error": "invalid_client",
                "error_description": "Client Authentication failed.",
            }
        if "grant_type=client_credentials" not in form:
            return 400, {"error": "unsupported_grant_type"}
        token = secrets.token_hex(16)
        with self._token_lock:
            self._tokens[token] = time.monotonic() + self.token_seconds
        return 200, {
            "access_token": token,
            "scope": "default",
            "token_type": "Bearer",
            "expires_in": int(self.token_seconds),
        }

    def _bearer_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        with self._token_lock:
            expires = self._tokens.get(token)
            if expires is None or time.monotonic() >= expires:
                return False
            self._uses[token] = self._uses.get(token, 0) + 1
            if self.token_uses is not None and self._uses[token] >= self.token_uses:
                self._tokens[token] = 0.0  # expired early: the next use gets 401
            return True

    # -- v1 ----------------------------------------------------------------------------------
    def _v1_site(self, site: EcoSite) -> dict[str, Any]:
        first, _ = self.dataset.site_span(site)
        main = site.channels[0]
        return {
            "id": site.id,
            "name": site.name,
            "domain": "Mjøsbyen (syntetisk)",
            "latitude": site.lat,
            "longitude": site.lon,
            "userType": main.user_type,
            "timezone": "(UTC+01:00) Europe/Oslo;Europe/Oslo",
            "interval": main.interval,
            "sens": main.sens,
            "installationDate": _local(self.dataset.start - timedelta(days=400), site.offsets),
            "firstData": _local(first, site.offsets),
            "photos": [],
            "counter": f"Y2H{site.id}",
            "channels": [
                {
                    "id": c.id,
                    "name": f"{site.name} {USER_TYPES[c.user_type]} {c.sens}",
                    "domain": "Mjøsbyen (syntetisk)",
                    "latitude": site.lat,
                    "longitude": site.lon,
                    "userType": c.user_type,
                    "timezone": "(UTC+01:00) Europe/Oslo;Europe/Oslo",
                    "interval": c.interval,
                    "sens": c.sens,
                    "firstData": _local(first, site.offsets),
                }
                for c in site.channels
            ],
        }

    def _channels(self, ident: int) -> tuple[EcoSite, list[EcoChannel]] | None:
        for site in self.dataset.sites:
            if site.id == ident:
                return site, list(site.channels)
            for channel in site.channels:
                if channel.id == ident:
                    return site, [channel]
        return None

    def _v1_data(self, ident: int, request: Request) -> Answer:
        found = self._channels(ident)
        if found is None:
            return 404, {"message": f"site {ident} not found"}
        site, channels = found
        begin, end = _read(request.arg("begin")), _read(request.arg("end"))
        step = request.arg("step") or "hour"
        if begin is None or end is None or end <= begin or step not in ("15m", "hour"):
            return 400, {"message": "begin/end (yyyy-mm-ddThh:mm:ss) and step 15m|hour needed"}
        complete = (request.arg("complete") or "true") == "true"
        size = timedelta(minutes=15) if step == "15m" else HOUR
        rows = []
        at = begin
        while at < end:
            value = self._sum(channels, at, size)
            if value is not None or complete:
                rows.append({"date": _local(at, site.offsets), "counts": value})
            at += size
        return 200, rows

    def _sum(self, channels: list[EcoChannel], at: datetime, size: timedelta) -> int | None:
        """Channels' values in ``[at, at + size)``: None when none of them counted anything."""
        present = [
            v
            for c in channels
            for t, v in self.dataset.values[c.id].items()
            if at <= t < at + size and v is not None
        ]
        return sum(present) if present else None

    # -- v2 ----------------------------------------------------------------------------------
    def _v2_site(self, site: EcoSite) -> dict[str, Any]:
        first, last = self.dataset.site_span(site)
        modes = sorted({USER_TYPES[c.user_type] for c in site.channels})
        minutes = min(c.interval for c in site.channels)
        return {
            "id": site.id,
            "name": site.name,
            "description": "",
            "customId": f"MJ-{site.id}",
            "location": {"lat": site.lat, "lon": site.lon},
            "firstData": first.astimezone(OSLO).isoformat(),
            "lastData": last.astimezone(OSLO).isoformat(),
            "granularity": "PT15M" if minutes == 15 else "PT1H",
            "travelModes": modes,
            "directional": len({c.sens for c in site.channels}) > 1,
        }

    def _v2_sites(self, request: Request) -> Answer:
        page = int(request.arg("page") or 1)
        size = int(request.arg("pageSize") or 100)
        sites = self.dataset.sites[(page - 1) * size : page * size]
        return 200, [self._v2_site(s) for s in sites]

    def _v2_history(self, request: Request) -> Answer:
        found = self._channels(int(request.arg("siteId") or 0))
        if found is None:
            return 404, {"message": "site not found"}
        _, channels = found
        try:
            start = _read(f"{request.arg('startDate')}T{request.arg('startTime') or '00:00'}")
            end = _read(f"{request.arg('endDate')}T{request.arg('endTime') or '00:00'}")
        except ValueError:
            return 400, {"message": "startDate/endDate must be YYYY-MM-DD, times HH:MM"}
        if request.arg("granularity") != "PT1H" or start is None or end is None:
            return 400, {"message": "this server answers granularity=PT1H"}
        modes = request.query.get("travelModes") or sorted(USER_TYPES.values())
        flows = []
        for channel in channels:
            mode = USER_TYPES[channel.user_type]
            if mode not in modes:
                continue
            data = []
            at = start
            while at < end:
                value = self._sum([channel], at, HOUR)
                if value is not None:
                    data.append(
                        {
                            "timestamp": at.astimezone(OSLO).isoformat(),
                            "granularity": "PT1H",
                            "counts": value,
                        }
                    )
                at += HOUR
            direction = "in" if channel.sens == 1 else "out"
            flows.append(
                {"flowId": channel.id, "travelMode": mode, "direction": direction, "data": data}
            )
        return 200, flows


def main(argv: list[str] | None = None) -> None:
    """Serve the synthetic Eco-Counter week until interrupted."""
    serve_main(
        argv, EcoCounterServer, eco_counter_week, 8125, "Eco-Counter (synthetic)", SYNTHETIC_NOTICE
    )


if __name__ == "__main__":
    main()
