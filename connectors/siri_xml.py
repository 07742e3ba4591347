"""SIRI 2.0 XML: streaming parse of ET and VM answers into plain journeys and activities.

:func:`parse_answer` feeds lxml's pull parser from the bytes as they arrive and yields each
``EstimatedVehicleJourney`` (:class:`SiriJourney`) or ``VehicleActivity`` (:class:`SiriActivity`)
once it is complete, clearing it and its finished siblings, so memory does not grow with the
answer. What the answer says about itself (``ResponseTimestamp``, ``MoreData``, an
``ErrorCondition``) lands in :class:`AnswerInfo`. What one element says is read by
:mod:`byflyt.connectors.siri_elements`; the connector (``connectors/siri.py``) turns it into
byflyt's records. Nothing here knows the static feed or Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lxml import etree

from byflyt.connectors.siri_elements import (
    BOOLEANS,
    LOCAL_NAMES,
    AnswerInfo,
    Excerpt,
    SiriActivity,
    SiriJourney,
    error_text,
    local_name,
    parse_time,
    read_activity,
    read_journey,
    text_of,
    unreadable_journey,
)

#: How far into an answer its root element must have begun (XML declaration, comments).
MAX_PROLOG_BYTES = 64 * 1024
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")


class UnsafeXML(ValueError):
    """An answer with a DTD (entity expansion, external entities) or no root element in sight."""


def _check_prolog(head: bytes) -> bool:
    """True once the root element has begun; UnsafeXML for a DTD before it."""
    root = _ROOT_START.search(head)
    doctype = _DOCTYPE.search(head)
    if doctype is not None and (root is None or doctype.start() < root.start()):
        raise UnsafeXML("has a DOCTYPE: DTDs and entities are refused (SIRI never needs them)")
    if root is None and len(head) > MAX_PROLOG_BYTES:
        raise UnsafeXML(f"has no root element in its first {MAX_PROLOG_BYTES} bytes")
    return root is not None


# Why the root's default namespace is renamed: SIRI answers declare SIRI as the default namespace
# on their root, so every element of the answer is in it, and lxml spells each one's tag as
# "{http://www.siri.org.uk/siri}Name", a string built anew at every read of ``.tag``: about a
# tenth of the CPU time of an answer. Everything here reads elements by local name, so the root
# start tag is fed to the parser with that declaration renamed to a prefixed one no element uses
# (the elements are then in no namespace, their tags their bare names). The answer's namespace is
# still told (``AnswerInfo.root_namespace``) and an excerpt still reads as the answer wrote it.
_DEFAULT_NS_PREFIX = b"_byflyt_default_ns"
_VALUE = rb"""(?:"[^"]*"|'[^']*')"""
_ATTRIBUTES = re.compile(rb"\s+([^\s=/>]+)\s*=\s*(" + _VALUE + rb")")
_ROOT_TAG = re.compile(rb"<[A-Za-z_][^\s/>]*((?:\s+[^\s=/>]+\s*=\s*" + _VALUE + rb")*)\s*/?>")
_RENAMED = re.compile(rb" xmlns:" + _DEFAULT_NS_PREFIX + rb'=("[^"]*")')
_TAG_NAME = re.compile(rb"<[^\s/>]*")


def _rename_default_namespace(head: bytes) -> tuple[bytes, bool] | None:
    """``head`` with its root's default namespace declaration renamed, and whether there was one.

    None while the root start tag is not complete in ``head``.
    """
    root = _ROOT_START.search(head)
    if root is None:
        return None
    tag = _ROOT_TAG.match(head, root.start())
    if tag is None:
        return None
    defaults = []
    for attribute in _ATTRIBUTES.finditer(head, tag.start(1), tag.end(1)):
        name = attribute.group(1)
        if name == b"xmlns:" + _DEFAULT_NS_PREFIX:
            return head, False  # the prefix is taken (never by SIRI): leave the answer alone
        if name == b"xmlns":
            defaults.append(attribute)
    # None, an empty one (a prefix cannot be undeclared) or two (malformed): as written.
    if len(defaults) != 1 or len(defaults[0].group(2)) == 2:
        return head, False
    default = defaults[0]
    at = default.start(1)
    renamed = head[:at] + b"xmlns:" + _DEFAULT_NS_PREFIX + head[at + len(b"xmlns") :]
    return renamed, True


def _restore_default_namespace(xml: bytes) -> bytes:
    """An element's XML as the answer declared it: the renamed declaration back to ``xmlns``.

    lxml writes the element's own namespace declarations first, then its ancestors', so the
    default one goes back right after the tag name (unless the element declares its own).
    """
    end = xml.find(b">")  # lxml escapes ">" in attribute values
    head = xml[:end]
    renamed = _RENAMED.search(head)
    if end < 0 or renamed is None:
        return xml
    head = head[: renamed.start()] + head[renamed.end() :]
    name = _TAG_NAME.match(head)
    at = name.end() if name is not None else len(head)
    if all(a.group(1) != b"xmlns" for a in _ATTRIBUTES.finditer(head, at)):
        head = head[:at] + b" xmlns=" + renamed.group(1) + head[at:]
    return head + xml[end:]


def _trim(journey: Any, keep: int, ended: bool) -> tuple[int, int]:
    """Remove the calls of ``journey`` past its first ``keep``: how many it had, how many went.

    Only calls that have ended are removed (one with a next sibling has; all of them once the
    journey has ``ended``): libxml2 is still filling in the open one.
    """
    found = 0
    past: list[Any] = []
    for call in journey.iter(*_CALL_TAGS):
        found += 1
        if found > keep and (ended or call.getnext() is not None):
            past.append(call)
    for call in past:
        parent = call.getparent()
        if parent is not None:
            parent.remove(call)
    return found, len(past)


def _too_many(journey: Any, raw: Excerpt | None, calls: int, max_calls: int) -> SiriJourney:
    problem = f"the journey has {calls} calls, more than the limit of {max_calls}"
    return unreadable_journey(journey, raw, problem, "too_many_calls")


def parse_answer(
    chunks: Iterable[bytes],
    info: AnswerInfo,
    *,
    keep_raw: bool = True,
    max_calls: int = 1000,
) -> Iterator[SiriJourney | SiriActivity]:
    """Journeys and vehicle activities of a SIRI answer, as its bytes arrive.

    ``info`` is filled in on the way (response time, ``MoreData``, error conditions, the root
    element and its namespace, the kinds of delivery, how many times had no offset). Every
    journey or activity is cleared from the tree once read, with its finished siblings, so
    memory does not grow with the answer. A journey with more than ``max_calls`` calls comes
    out with a ``too_many_calls`` problem; the bytes are fed to the parser
    :data:`FEED_BYTES` at a time and, between feeds, the open journey's calls past the limit
    are dropped, so such a journey is never held whole. Raises :class:`UnsafeXML` for an
    answer with a DTD before anything is parsed, and ``lxml.etree.XMLSyntaxError`` for
    malformed XML (libxml2's limits apply: nesting deeper than 256 is refused), after the
    complete elements before the fault.
    """
    # Why a tag filter: libxml2 then hands Python only these elements (in any namespace), not
    # the hundred or so start and end events of every journey's leaves. Why start events: the
    # open journey is the one whose calls are counted and trimmed between feeds.
    parser = etree.XMLPullParser(
        events=("start", "end"),
        tag=[f"{{*}}{name}" for name in _EVENT_TAGS],
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    open_journeys: list[list[Any]] = []  # [element, calls dropped so far], innermost last
    seen: list[Any] = []  # one element, for the root of an answer cut short
    restore: Callable[[bytes], bytes] | None = None  # set once the default namespace is renamed

    local_names = LOCAL_NAMES

    def events() -> Iterator[SiriJourney | SiriActivity]:
        for event, element in parser.read_events():
            if not seen:
                seen.append(element)
            tag = element.tag
            name = local_names.get(tag) or local_name(tag)
            if event == "start":
                if name == "EstimatedVehicleJourney":
                    open_journeys.append([element, 0])
                continue
            if name == "EstimatedVehicleJourney":
                dropped = open_journeys.pop()[1] if open_journeys else 0
                excerpt = Excerpt(element, restore) if keep_raw else None
                journey = None if dropped else read_journey(element, excerpt, info)
                if journey is None or len(journey.calls) > max_calls:
                    found = dropped + _trim(element, max_calls, ended=True)[0]
                    journey = _too_many(element, excerpt, found, max_calls)
                yield journey
                if excerpt is not None:
                    excerpt.release()
            elif name == "VehicleActivity":
                raw = b""
                if keep_raw:
                    raw = etree.tostring(element)
                    raw = (restore(raw) if restore is not None else raw)[:8192]
                yield read_activity(element, raw, info)
            elif name == "ResponseTimestamp":
                if info.response_at is None:
                    try:
                        info.response_at = parse_time(element.text, info)
                    except ValueError:
                        info.unreadable_response_timestamp = text_of(element)[:64]
                continue
            elif name == "MoreData":
                info.more_data = info.more_data or BOOLEANS.get(text_of(element).lower(), False)
                continue
            elif name == "ErrorCondition":
                info.errors.append(error_text(element))
                continue
            element.clear(keep_tail=False)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]

    def feed(data: bytes) -> Iterator[SiriJourney | SiriActivity]:
        for start in range(0, len(data), FEED_BYTES):
            parser.feed(data[start : start + FEED_BYTES])
            yield from events()
            if open_journeys:
                innermost = open_journeys[-1]
                innermost[1] += _trim(innermost[0], max_calls, ended=False)[1]

    # The answer's first bytes are held back until its root start tag is complete (at most
    # MAX_PROLOG_BYTES and a chunk), to rename the default namespace declared there.
    head = b""
    started = held = False
    try:
        for chunk in chunks:
            if held:
                yield from feed(chunk)
                continue
            head += chunk
            started = started or _check_prolog(head)
            renamed = _rename_default_namespace(head) if started else None
            if renamed is None and len(head) <= MAX_PROLOG_BYTES:
                continue
            held = True
            if renamed is not None:
                head, named = renamed
                restore = _restore_default_namespace if named else None
            yield from feed(head)
        if not held:
            if not started:
                _check_prolog(head)
            yield from feed(head)
        root = parser.close()
    except etree.XMLSyntaxError:
        # The elements complete before the fault are still good: hand them out first.
        yield from events()
        if seen:
            _describe(seen[0].getroottree().getroot(), info, restore is not None)
        raise
    yield from events()
    _describe(root, info, restore is not None)


#: The most bytes handed to the parser at once (see :func:`parse_answer`).
FEED_BYTES = 64 * 1024
_CALL_TAGS = ("{*}EstimatedCall", "{*}RecordedCall")
_EVENT_TAGS = (
    "EstimatedVehicleJourney",
    "VehicleActivity",
    "ResponseTimestamp",
    "MoreData",
    "ErrorCondition",
)


def _describe(root: Any, info: AnswerInfo, renamed: bool) -> None:
    """Fill in the answer's root element and kinds of delivery from what is left of its tree.

    Journeys and activities are cleared as read; the deliveries around them stay. ``renamed``:
    the root's default namespace was renamed (see :func:`_rename_default_namespace`).
    """
    info.root = local_name(root.tag)
    info.root_namespace = etree.QName(root).namespace
    if renamed and info.root_namespace is None:
        info.root_namespace = root.nsmap.get(_DEFAULT_NS_PREFIX.decode())
    for element in root.iterdescendants():
        name = local_name(element.tag)
        if name.endswith("Delivery"):
            info.deliveries.add(name)
