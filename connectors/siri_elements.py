"""SIRI 2.0 elements read into plain records: journeys and their calls, vehicle activities.

:func:`read_journey` reads one complete ``EstimatedVehicleJourney`` into a :class:`SiriJourney`
(its calls as :class:`SiriCall`), :func:`read_activity` one ``VehicleActivity``; both are handed
their element by the streaming parse (:mod:`byflyt.connectors.siri_xml`), which also fills
in :class:`AnswerInfo`. Times are read by :func:`parse_time`, once per distinct text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from lxml import etree

from byflyt.clock import OSLO


def local_name(tag: object) -> str:
    """An element's local name (comments and processing instructions: "")."""
    if not isinstance(tag, str):
        return ""
    name = LOCAL_NAMES.get(tag)
    if name is None:
        name = tag.rpartition("}")[2]
        if len(LOCAL_NAMES) < _LOCAL_NAMES_MAX:  # a hostile answer may invent endless tags
            LOCAL_NAMES[tag] = name
    return name


# Why a memo: a journey has a hundred or so elements, all with a handful of qualified names.
LOCAL_NAMES: dict[str, str] = {}
_LOCAL_NAMES_MAX = 4096


def text_of(element: Any) -> str:
    """An element's text, stripped ("" when it has none)."""
    return (element.text or "").strip()


def parse_time(text: str | None, info: AnswerInfo | None = None) -> datetime | None:
    """A SIRI timestamp (ISO 8601, fractional seconds allowed) in UTC.

    A time without a UTC offset is Europe/Oslo local time: four of Entur's six published SIRI
    profile examples write times so. Each one is counted in ``info.local_times``. Raises
    ValueError for text that is not a time.
    """
    if not text:
        return None
    known = _TIMES.get(text)
    if known is None:
        try:
            value = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{text.strip()[:64]!r} is not an ISO 8601 time") from None
        local = value.tzinfo is None  # fromisoformat gives a fixed offset or none
        if local:
            # Norwegian producers write offset-less times as Europe/Oslo local time (in
            # October's repeated hour, the first of the two: fold 0).
            value = value.replace(tzinfo=OSLO)
        known = (value.astimezone(UTC), local)
        if len(_TIMES) >= _TIMES_MAX:
            _TIMES.clear()
            _OFFSET_TIMES.clear()
        _TIMES[text] = known
        if not local:
            _OFFSET_TIMES[text] = known[0]
    if known[1] and info is not None:
        info.local_times += 1
    return known[0]


# Why a memo: an answer names the same minutes over and over (aimed times, a call's arrival and
# departure); parsing one costs more than looking it up.
_TIMES: dict[str, tuple[datetime, bool]] = {}
_OFFSET_TIMES: dict[str, datetime] = {}  # those with an offset: nothing to count, one lookup
_TIMES_MAX = 65_536


# -- parsing -------------------------------------------------------------------------------------
# Why Structs (not dataclasses or named tuples): an answer makes one journey and several calls
# per 1.5 KB, and a frozen dataclass costs more to build than its elements cost to read.
class SiriCall(msgspec.Struct, frozen=True, gc=False):
    """One ``RecordedCall`` or ``EstimatedCall`` as read."""

    order: int | None
    stop_ref: str
    recorded: bool
    cancelled: bool
    departure_status: str | None = None
    arrival_status: str | None = None
    aimed_departure: datetime | None = None
    aimed_arrival: datetime | None = None
    expected_departure: datetime | None = None
    expected_arrival: datetime | None = None
    actual_departure: datetime | None = None
    actual_arrival: datetime | None = None
    occupancy: str | None = None


class SiriJourney(msgspec.Struct, frozen=True, gc=False):
    """One ``EstimatedVehicleJourney`` as read; ``problem`` says why it cannot be read."""

    journey_ref: str | None
    service_date: date | None
    line_ref: str | None
    vehicle_mode: str | None
    cancelled: bool
    extra: bool
    vehicle_ref: str | None
    occupancy: str | None
    calls: tuple[SiriCall, ...]
    excerpt: Excerpt | None = None
    problem: str | None = None
    rule: str = "unreadable"
    recorded_at: datetime | None = None

    @property
    def raw(self) -> bytes:
        """The journey's XML (its first 8 KiB), for a dead letter; see :class:`Excerpt`."""
        return self.excerpt.get() if self.excerpt is not None else b""


class Excerpt:
    """The XML of the element being handed out, serialised only when asked for.

    Serialising every journey would cost about as much as parsing it, and only rejected ones
    need it. The element is cleared once the next one is read: ask while the journey is the
    one handed out (after that, an excerpt never asked for is empty).
    """

    __slots__ = ("element", "serialise", "text")

    def __init__(self, element: Any, serialise: Callable[[Any], bytes] = etree.tostring) -> None:
        self.element = element
        self.serialise = serialise  # how the answer's elements are written (see siri_xml)
        self.text: bytes | None = None

    def get(self) -> bytes:
        """The first 8 KiB of the element's XML."""
        if self.text is None:
            element, self.element = self.element, None
            self.text = self.serialise(element)[:8192] if element is not None else b""
        return self.text

    def release(self) -> None:
        """The element is about to be cleared: what was not asked for is gone."""
        self.element = None


class SiriActivity(msgspec.Struct, frozen=True, gc=False):
    """One ``VehicleActivity`` as read."""

    vehicle_ref: str | None
    recorded_at: datetime | None
    journey_ref: str | None
    line_ref: str | None
    vehicle_mode: str | None
    lat: float | None
    lon: float | None
    occupancy: str | None
    raw: bytes = b""
    problem: str | None = None


@dataclass
class AnswerInfo:
    """What an answer says about itself, filled in while it is parsed."""

    response_at: datetime | None = None
    more_data: bool = False
    errors: list[str] = field(default_factory=list)
    root: str | None = None
    root_namespace: str | None = None
    deliveries: set[str] = field(default_factory=set)
    local_times: int = 0
    unreadable_response_timestamp: str | None = None


BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


# A call's children, by local name: the index of the SiriCall field each one fills in, and how
# its text is read (the six times by parse_time, the rest by these). Anything else is skipped.
def _order(text: str | None) -> int:
    return int(text or "")


def _stop_ref(text: str | None) -> str:
    return (text or "").strip()


def _flag(text: str | None) -> bool:
    return BOOLEANS.get((text or "").strip().lower(), False)


def _status(text: str | None) -> str:
    return (text or "").strip().lower()


def _occupancy(text: str | None) -> str | None:
    return (text or "").strip() or None


_CALL_FIELDS: dict[str, tuple[int, Callable[[str | None], Any] | None]] = {
    "Order": (0, _order),
    "StopPointRef": (1, _stop_ref),
    "Cancellation": (3, _flag),
    "DepartureStatus": (4, _status),
    "ArrivalStatus": (5, _status),
    "AimedDepartureTime": (6, None),
    "AimedArrivalTime": (7, None),
    "ExpectedDepartureTime": (8, None),
    "ExpectedArrivalTime": (9, None),
    "ActualDepartureTime": (10, None),
    "ActualArrivalTime": (11, None),
    "Occupancy": (12, _occupancy),
}
_TEXT_MAX = 65_536  # the most texts a memo keeps (a hostile answer may invent endless ones)


class _CallField:
    """How a call's child of one qualified tag is read: its field, each distinct text once."""

    __slots__ = ("convert", "index", "memo")

    def __init__(self, index: int, convert: Callable[[str | None], Any] | None) -> None:
        self.index = index
        self.convert = convert
        # Shared by the tags of a kind: a time text means the same in any of the six.
        self.memo = _MEMOS.setdefault(convert, {})

    def read(self, text: str | None, info: AnswerInfo) -> Any:
        """A text the memo does not know yet (the memo learns it unless it must be counted)."""
        memo = self.memo
        if len(memo) >= _TEXT_MAX:
            memo.clear()
        if self.convert is None:
            value = parse_time(text, info)
            if value is None or text in _OFFSET_TIMES:  # an offset-less time counts each time
                memo[text] = value
            return value
        value = memo[text] = self.convert(text)
        return value


_MEMOS: dict[object, dict[str | None, Any]] = {}
_SKIPPED = _CallField(-1, _stop_ref)
# Why by qualified tag: one lookup a child, where a local name would cost two.
_FIELDS_BY_TAG: dict[object, _CallField] = {}
# The same, flat for the loop that reads every call: a qualified tag's field index (-1: skipped),
# and each field's memo by index; what either does not know yet, _read_call learns.
_INDEX_BY_TAG: dict[object, int] = {}
_MEMO_BY_INDEX: list[dict[str | None, Any]] = [
    {} for _ in range(max(index for index, _ in _CALL_FIELDS.values()) + 1)
]


def _call_field(tag: object) -> _CallField:
    known = _CALL_FIELDS.get(local_name(tag))
    field = _CallField(*known) if known is not None else _SKIPPED
    if len(_FIELDS_BY_TAG) < _LOCAL_NAMES_MAX:
        _FIELDS_BY_TAG[tag] = field
        _INDEX_BY_TAG[tag] = field.index
        if field.index >= 0:
            _MEMO_BY_INDEX[field.index] = field.memo
    return field


def _read_call(call: Any, blank: list[Any], info: AnswerInfo) -> list[Any]:
    """A call's field values, learning the tags and texts the fast loop does not know yet."""
    values = blank[:]
    fields_by_tag, missing = _FIELDS_BY_TAG, _MISSING
    for leaf in call[:]:
        tag = leaf.tag
        reading = fields_by_tag.get(tag) or _call_field(tag)
        index = reading.index
        if index < 0:
            continue
        text = leaf.text
        value = reading.memo.get(text, missing)
        if value is missing:
            value = reading.read(text, info)
        values[index] = value
    return values


# What a journey's child is, by local name: a field it reads (an index into _FIELDS), the
# framed ref, the recorded or the estimated calls; anything else is skipped.
_FIELDS = (
    "DatedVehicleJourneyRef",
    "EstimatedVehicleJourneyCode",
    "LineRef",
    "VehicleMode",
    "Cancellation",
    "ExtraJourney",
    "VehicleRef",
    "Occupancy",
    "RecordedAtTime",
)
_FRAMED, _RECORDED, _ESTIMATED, _SKIP, _DATA_FRAME = -1, -2, -3, -4, -5
_JOURNEY_KINDS = {name: kind for kind, name in enumerate(_FIELDS)} | {
    "DataFrameRef": _DATA_FRAME,  # within the framed ref only
    "FramedVehicleJourneyRef": _FRAMED,
    "RecordedCalls": _RECORDED,
    "EstimatedCalls": _ESTIMATED,
}
_KINDS_BY_TAG: dict[object, int] = {}
# A call before its children are read: SiriCall's fields in order.
_RECORDED_CALL: list[Any] = [None, "", True, False, *[None] * 9]
_ESTIMATED_CALL: list[Any] = [None, "", False, False, *[None] * 9]
_MISSING = object()
_IS_CALL: dict[object, bool] = {}
_DATES: dict[str, date] = {}


def _journey_kind(tag: object) -> int:
    kind = _JOURNEY_KINDS.get(local_name(tag), _SKIP)
    if len(_KINDS_BY_TAG) < _LOCAL_NAMES_MAX:
        _KINDS_BY_TAG[tag] = kind
    return kind


def _is_call(tag: object) -> bool:
    call = local_name(tag).endswith("Call")
    if len(_IS_CALL) < _LOCAL_NAMES_MAX:
        _IS_CALL[tag] = call
    return call


def _service_date(text: str) -> date:
    known = _DATES.get(text)
    if known is None:
        known = date.fromisoformat(text)
        if len(_DATES) >= _TIMES_MAX:
            _DATES.clear()
        _DATES[text] = known
    return known


def read_journey(element: Any, raw: Excerpt | None, info: AnswerInfo) -> SiriJourney:
    """A complete ``EstimatedVehicleJourney``; one that cannot be read carries its problem.

    Only what the journey's own children say is read (unknown ``Extensions`` are passed over),
    each child looked up by its qualified tag: this is the loop an answer spends its time in.
    """
    # The first leaf of each name wins, but the framed ref's DatedVehicleJourneyRef is the ref.
    fields: list[str | None] = [None] * len(_FIELDS)
    calls: list[SiriCall] = []
    service_date: date | None = None
    kinds, is_call = _KINDS_BY_TAG, _IS_CALL
    index_of, memo_of = _INDEX_BY_TAG, _MEMO_BY_INDEX
    recorded_call, estimated_call = _RECORDED_CALL, _ESTIMATED_CALL
    new_call = SiriCall
    try:
        for child in element[:]:
            tag = child.tag
            kind = kinds.get(tag)
            if kind is None:
                kind = _journey_kind(tag)
            if kind < _ESTIMATED:  # skipped, or a DataFrameRef outside the framed ref
                continue
            if kind >= 0:
                if fields[kind] is None and not len(child):
                    fields[kind] = (child.text or "").strip()
            elif kind != _FRAMED:  # the recorded or the estimated calls
                blank = recorded_call if kind == _RECORDED else estimated_call
                for call in child[:]:
                    tag = call.tag
                    known = is_call.get(tag)
                    if not (known or (known is None and _is_call(tag))):
                        continue
                    # A call, read here rather than in a function of its own: there are
                    # several a journey, and the call would cost a tenth of reading it. Every
                    # tag and text known (the usual case): two lookups a child, nothing else;
                    # else _read_call reads the call again and learns what was missing.
                    values = blank[:]
                    try:
                        # Why a slice: a list of a call's children costs less than an iterator.
                        for leaf in call[:]:
                            index = index_of[leaf.tag]
                            if index >= 0:
                                values[index] = memo_of[index][leaf.text]
                    except KeyError:
                        values = _read_call(call, blank, info)
                    calls.append(new_call(*values))
            else:
                for part in child[:]:
                    tag = part.tag
                    kind = kinds.get(tag)
                    if kind is None:
                        kind = _journey_kind(tag)
                    if kind == _DATA_FRAME:
                        if text := (part.text or "").strip():
                            service_date = _service_date(text)
                    elif kind == 0:  # DatedVehicleJourneyRef
                        fields[0] = (part.text or "").strip()
        recorded_at = parse_time(fields[8], info) if fields[8] is not None else None
    except ValueError as exc:
        return unreadable_journey(element, raw, str(exc), "unreadable")
    ref, code, line, mode, cancelled, extra, vehicle, occupancy = fields[:8]
    return SiriJourney(
        ref or code or None,
        service_date,
        line or None,
        mode or None,
        BOOLEANS.get(cancelled.lower(), False) if cancelled else False,
        BOOLEANS.get(extra.lower(), False) if extra else False,
        vehicle or None,
        occupancy or None,
        tuple(calls),
        raw,
        None,
        "unreadable",
        recorded_at,
    )


def unreadable_journey(element: Any, raw: Excerpt | None, problem: str, rule: str) -> SiriJourney:
    """A journey that cannot be used: its ref (for the dead letter), the problem and rule."""
    ref = _ref_of(element)
    return SiriJourney(ref, None, None, None, False, False, None, None, (), raw, problem, rule)


def _ref_of(element: Any) -> str | None:
    """The journey ref of an element that cannot be read whole (for the dead-letter context)."""
    for child in element.iter():
        if local_name(child.tag) in ("DatedVehicleJourneyRef", "EstimatedVehicleJourneyCode"):
            return text_of(child)[:256] or None
    return None


def read_activity(element: Any, raw: bytes, info: AnswerInfo) -> SiriActivity:
    """A complete ``VehicleActivity``: the first leaf of each name anywhere within it."""
    found: dict[str, str] = {}
    for child in element.iter():
        name = local_name(child.tag)
        if name and len(child) == 0 and name not in found:
            found[name] = text_of(child)
    try:
        recorded_at = parse_time(found.get("RecordedAtTime"), info)
        lat = float(found["Latitude"]) if found.get("Latitude") else None
        lon = float(found["Longitude"]) if found.get("Longitude") else None
    except ValueError as exc:
        return SiriActivity(None, None, None, None, None, None, None, None, raw, str(exc))
    return SiriActivity(
        vehicle_ref=found.get("VehicleRef") or None,
        recorded_at=recorded_at,
        journey_ref=found.get("DatedVehicleJourneyRef") or None,
        line_ref=found.get("LineRef") or None,
        vehicle_mode=found.get("VehicleMode") or None,
        lat=lat,
        lon=lon,
        occupancy=found.get("Occupancy") or None,
        raw=raw,
    )


def error_text(element: Any) -> str:
    """What an ``ErrorCondition`` says: the kind of error and its texts."""
    wanted = ("ErrorText", "Description")
    texts = [text_of(e) for e in element.iter() if local_name(e.tag) in wanted]
    kinds = [local_name(e.tag) for e in element if local_name(e.tag).endswith("Error")]
    detail = "; ".join(t for t in texts if t) or "no description"
    return f"{kinds[0] if kinds else 'ErrorCondition'}: {detail}"
