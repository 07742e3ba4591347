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


# Why the root's default namespace is undeclared: SIRI answers declare SIRI as the default
# namespace on their root, so every element of the answer is in it, and lxml spells each one's
# tag as "{http://www.siri.org.uk/siri}Name", a string built anew at every read of ``.tag``:
# about a tenth of the CPU time of an answer. Everything here reads elements by local name, so
# the root start tag is fed to the parser with ``xmlns="URI"`` written as ``xmlns=""`` and as
# many spaces as the URI had: the elements are in no namespace (their tags their bare names),
# and every byte after it stays where it was (a parse error names the same line and column). The
# answer's namespace is still told (``AnswerInfo.root_namespace``) and an excerpt still reads as
# lxml would have written it. A declaration that is empty, repeated, or has anything a URI
# would have to escape is left as written.
_VALUE = rb"""(?:"[^"]*"|'[^']*')"""
_ATTRIBUTES = re.compile(rb"\s+([^\s=/>]+)\s*=\s*(" + _VALUE + rb")")
_ROOT_TAG = re.compile(rb"<[A-Za-z_][^\s/>]*((?:\s+[^\s=/>]+\s*=\s*" + _VALUE + rb")*)\s*/?>")
_PLAIN_URI = re.compile(rb"[\x21\x23-\x25\x28-\x3b\x3d\x3f-\x7e]+")  # no quote, &, <, >
_TAG_NAME = re.compile(rb"<[^\s/>]*")
# A byte order mark, the XML declaration, processing instructions, comments and white space.
_PROLOG = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


def _undeclare_default_namespace(head: bytes) -> tuple[bytes, str | None] | None:
    """``head`` with its root's default namespace undeclared, and that namespace (None: kept).

    None while the root start tag is not complete in ``head``.
    """
    prolog = _PROLOG.match(head)  # always matches, if only the empty string
    tag = _ROOT_TAG.match(head, prolog.end()) if prolog is not None else None
    if tag is None:
        return None
    defaults = [
        a for a in _ATTRIBUTES.finditer(head, tag.start(1), tag.end(1)) if a.group(1) == b"xmlns"
    ]
    if len(defaults) != 1:
        return head, None
    start, end = defaults[0].span(2)
    uri = head[start + 1 : end - 1]
    if _PLAIN_URI.fullmatch(uri) is None:
        return head, None
    quote = head[start : start + 1]
    blank = quote + quote + b" " * len(uri)
    return head[:start] + blank + head[end:], uri.decode("ascii")


def _serialiser(uri: str) -> Callable[[Any], bytes]:
    """An element's XML as lxml would have written it with ``uri`` the root's default namespace.

    lxml writes an element's own namespace declarations first, then the element's namespace,
    then its ancestors' others in order. With the default one undeclared, the element is in no
    namespace and the root's ``xmlns=""`` comes among its ancestors': it goes back after the
    element's own (for an element with a prefix, it stays where it is). The element's own are
    told from its ``nsmap`` against its parent's, so one that merely repeats an ancestor's (same
    prefix, same URI) is taken for the ancestor's: the default one then comes before it, where
    lxml would have put it after (the same XML, its declarations in another order).
    """
    declared = b' xmlns="' + uri.encode("ascii") + b'"'

    def serialise(element: Any) -> bytes:
        xml: bytes = etree.tostring(element)
        end = xml.find(b">")  # lxml escapes ">" in attribute values
        name = _TAG_NAME.match(xml)
        if end < 0 or name is None:
            return xml
        declarations = [
            a
            for a in _ATTRIBUTES.finditer(xml, name.end(), end)
            if a.group(1) == b"xmlns" or a.group(1).startswith(b"xmlns:")
        ]
        default = next((d for d in declarations if d.group(1) == b"xmlns"), None)
        if default is None or default.group(2) != b'""':
            return xml  # the element declares a default namespace of its own
        at = default.start()
        if b":" not in name.group():
            parent = element.getparent()
            inherited = parent.nsmap if parent is not None else {}
            own = sum(1 for prefix, ns in element.nsmap.items() if inherited.get(prefix) != ns)
            own = min(own, declarations.index(default))
            at = declarations[own - 1].end() if own else name.end()
        xml = xml[: default.start()] + xml[default.end() :]
        return xml[:at] + declared + xml[at:]

    return serialise


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
    default_namespace: str | None = None  # the root's, once undeclared (see below)
    serialise: Callable[[Any], bytes] = etree.tostring  # an excerpt's XML (see below)

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
                excerpt = Excerpt(element, serialise) if keep_raw else None
                journey = None if dropped else read_journey(element, excerpt, info)
                if journey is None or len(journey.calls) > max_calls:
                    found = dropped + _trim(element, max_calls, ended=True)[0]
                    journey = _too_many(element, excerpt, found, max_calls)
                yield journey
                if excerpt is not None:
                    excerpt.release()
            elif name == "VehicleActivity":
                raw = serialise(element)[:8192] if keep_raw else b""
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
    # MAX_PROLOG_BYTES and a chunk), to undeclare the default namespace declared there.
    head = b""
    started = released = False
    try:
        for chunk in chunks:
            if released:
                yield from feed(chunk)
                continue
            head += chunk
            started = started or _check_prolog(head)
            undeclared = _undeclare_default_namespace(head) if started else None
            if undeclared is None and len(head) <= MAX_PROLOG_BYTES:
                continue
            released = True
            if undeclared is not None:
                head, default_namespace = undeclared
                if default_namespace is not None:
                    serialise = _serialiser(default_namespace)
            yield from feed(head)
        if not released:
            if not started:
                _check_prolog(head)
            yield from feed(head)
        root = parser.close()
    except etree.XMLSyntaxError:
        # The elements complete before the fault are still good: hand them out first.
        yield from events()
        if seen:
            _describe(seen[0].getroottree().getroot(), info, default_namespace)
        raise
    yield from events()
    _describe(root, info, default_namespace)


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


def _describe(root: Any, info: AnswerInfo, default_namespace: str | None) -> None:
    """Fill in the answer's root element and kinds of delivery from what is left of its tree.

    Journeys and activities are cleared as read; the deliveries around them stay.
    ``default_namespace``: the root's, undeclared before parsing
    (:func:`_undeclare_default_namespace`).
    """
    info.root = local_name(root.tag)
    info.root_namespace = etree.QName(root).namespace
    if info.root_namespace is None:
        info.root_namespace = default_namespace
    for element in root.iterdescendants():
        name = local_name(element.tag)
        if name.endswith("Delivery"):
            info.deliveries.add(name)
