"""The load generator: N concurrent API clients against ``byflyt serve`` for a bounded time.

Run in its own process (``python -m bench.loadgen URL --clients N --seconds S``) so that the
clients' own work does not share a GIL with the server or the benchmark's producer. Each client
holds one keep-alive connection and sends requests back to back (a closed loop, as ``wrk -c N``
does), each drawn from :data:`MIX`: the calls analysts and the live page make, over varied
kommuner, modes and time ranges. Only loopback URLs are accepted, and every loop ends by itself
at its deadline. Prints one JSON object: counts, requests/s, latency percentiles overall and per
kind of call, and every error (status or exception) by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

MJOSBYEN = ("3403", "3405", "3407", "3411", "3412", "3413", "3420", "3442", "3443")
REQUEST_TIMEOUT_S = 30.0

Call = tuple[str, str, dict[str, str]]
"""A call: its kind (for the per-kind figures), its path with query, and extra headers."""


def _day(rng: random.Random, first: datetime, days: int) -> datetime:
    return first + timedelta(days=rng.randrange(days))


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def _q(params: list[tuple[str, str]]) -> str:
    return urlencode(params)


def calls(first_day: datetime, days: int) -> list[tuple[float, Callable[[random.Random], Call]]]:
    """The mix of calls, each with its weight; dates fall in ``[first_day, first_day + days)``.

    The live page polls its state; analysts read hourly values (JSON and CSV, one kommune or a
    region, a day to a week), the index, points, outages and the registry lists.
    """

    def live(rng: random.Random) -> Call:
        query = "?region=mjosbyen" if rng.random() < 0.8 else ""
        return "live_state", f"/live/state.json{query}", {}

    def hourly_kommune(rng: random.Random) -> Call:
        start = _day(rng, first_day, days)
        end = start + timedelta(hours=rng.choice((6, 24, 48, 72)))
        params = [("from", _z(start)), ("to", _z(end)), ("kommune", rng.choice(MJOSBYEN))]
        if rng.random() < 0.5:
            params.append(("mode", "bicycle"))
        return "hourly_kommune", f"/api/v1/hourly?{_q(params)}", {}

    def hourly_region(rng: random.Random) -> Call:
        start = _day(rng, first_day, days)
        end = start + timedelta(days=rng.choice((1, 2, 7)))
        params = [("from", start.date().isoformat()), ("to", end.date().isoformat())]
        params += [("region", "mjosbyen"), ("mode", "bicycle"), ("metric", "volume")]
        params += [("limit", str(rng.choice((100, 500, 1000))))]
        return "hourly_region", f"/api/v1/hourly?{_q(params)}", {}

    def hourly_csv(rng: random.Random) -> Call:
        start = _day(rng, first_day, days)
        end = start + timedelta(days=rng.choice((1, 3)))
        picked = rng.sample(MJOSBYEN, rng.randint(2, 4))
        params = [("from", _z(start)), ("to", _z(end))] + [("kommune", k) for k in picked]
        return "hourly_csv", f"/api/v1/hourly?{_q(params)}", {"Accept": "text/csv"}

    def index(rng: random.Random) -> Call:
        params = [("period", first_day.strftime("%Y-%m"))]
        if rng.random() < 0.5:
            params.append(("region", "mjosbyen"))
        else:
            params.append(("kommune", rng.choice(MJOSBYEN)))
        params.append(("limit", str(rng.choice((50, 500)))))
        return "index", f"/api/v1/index?{_q(params)}", {}

    def points(rng: random.Random) -> Call:
        if rng.random() < 0.5:
            return "points", "/api/v1/points?region=mjosbyen&limit=100", {}
        return "points", f"/api/v1/points?kommune={rng.choice(MJOSBYEN)}&mode=bicycle", {}

    def outages(rng: random.Random) -> Call:
        query = "region=mjosbyen" + ("&open=true" if rng.random() < 0.5 else "")
        return "outages", f"/api/v1/outages?{query}", {}

    def registry(rng: random.Random) -> Call:
        path = rng.choice(("/api/v1/regions", "/api/v1/kommuner?region=mjosbyen"))
        return "registry", path, {}

    return [
        (0.25, live),
        (0.25, hourly_kommune),
        (0.15, hourly_region),
        (0.10, hourly_csv),
        (0.08, index),
        (0.07, points),
        (0.05, outages),
        (0.05, registry),
    ]


class Tally:
    """What the clients saw: latencies per kind of call, and errors by kind."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()

    def add(self, kind: str, seconds: float) -> None:
        """Note one answered call."""
        self.latencies.setdefault(kind, []).append(seconds)

    def figures(self, elapsed: float) -> dict[str, Any]:
        """Counts, requests/s and latency percentiles (milliseconds), overall and per kind."""
        every = sorted(s for kind in self.latencies.values() for s in kind)
        return {
            "requests": len(every),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(10)),
            "seconds": round(elapsed, 2),
            "requests_per_s": round(len(every) / elapsed, 1) if elapsed else 0.0,
            **percentiles(every),
            "by_kind": {
                kind: {"requests": len(values), **percentiles(sorted(values))}
                for kind, values in sorted(self.latencies.items())
            },
        }


def percentiles(ordered: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of sorted seconds, in milliseconds."""

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
    }


def check_loopback(url: str) -> None:
    """Refuse any target that is not this machine: a load test never leaves loopback."""
    host = urlsplit(url).hostname or ""
    if host != "localhost" and not (_is_ip(host) and ip_address(host).is_loopback):
        raise SystemExit(f"bench.loadgen: {url} is not a loopback address; refusing to load it")


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


async def _client(
    session: aiohttp.ClientSession,
    base: str,
    mix: list[tuple[float, Callable[[random.Random], Call]]],
    rng: random.Random,
    deadline: float,
    tally: Tally,
) -> None:
    weights = [w for w, _ in mix]
    makers = [m for _, m in mix]
    while time.perf_counter() < deadline:
        kind, path, headers = rng.choices(makers, weights)[0](rng)
        began = time.perf_counter()
        try:
            async with session.get(base + path, headers=headers) as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.errors[f"{kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)  # a refused connection must not spin the loop
            continue
        if status != 200:
            tally.errors[f"{kind}: HTTP {status}"] += 1
            continue
        tally.add(kind, time.perf_counter() - began)


async def run(
    base: str,
    clients: int,
    seconds: float,
    first_day: datetime,
    days: int,
    seed: int = 0,
    only: str | None = None,
) -> dict[str, Any]:
    """``clients`` keep-alive clients for ``seconds``; the figures of :class:`Tally`.

    ``only`` sends one path instead of the mix (e.g. ``/healthz`` for the framework's ceiling).
    """
    check_loopback(base)
    mix = calls(first_day, days)
    if only is not None:
        path = only

        def fixed(_: random.Random) -> Call:
            return path, path, {}

        mix = [(1.0, fixed)]
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(
            *(
                _client(session, base, mix, random.Random(seed * 100_003 + n), deadline, tally)
                for n in range(clients)
            )
        )
        elapsed = time.perf_counter() - began
    return {"clients": clients, **tally.figures(elapsed)}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the clients, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("url", help="serve's base URL, e.g. http://127.0.0.1:8066 (loopback)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--first-day", default="2025-06-01", help="first day of the data (UTC)")
    parser.add_argument("--days", type=int, default=7, help="days of data from first-day")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="one path instead of the mix")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000 or not 0 < args.seconds <= 600:
        parser.error("--clients takes 1–1000 and --seconds at most 600")
    first = datetime.fromisoformat(args.first_day).replace(tzinfo=UTC)
    figures = asyncio.run(
        run(
            args.url.rstrip("/"), args.clients, args.seconds, first, args.days, args.seed, args.only
        )
    )
    sys.stdout.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
