"""The SIRI parse loop: only the elements it reads reach Python, and what it still tells.

Answers from the hostile-input corpus (tests/corpus/siri), fed in small chunks as they arrive
over HTTP: the root and deliveries are told from the tree left after the journeys are cleared,
a journey's XML excerpt is serialised while it is the one handed out (and only if asked), a
call's repeated time text is read once but every offset-less time is still counted, and the
default namespace the parse renames for speed never shows (excerpts, root namespace, errors).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from byflyt.connectors import siri_elements, siri_xml
from byflyt.connectors.siri_xml import AnswerInfo, SiriActivity, SiriJourney, parse_answer

CORPUS = Path(__file__).resolve().parent / "corpus" / "siri"


def chunks(name: str, size: int = 97) -> Iterator[bytes]:
    data = (CORPUS / name).read_bytes()
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_root_deliveries_and_journeys_of_an_et_answer() -> None:
    info = AnswerInfo()
    seen = []
    for journey in parse_answer(chunks("s18_duplicate_journeys.xml"), info):
        assert isinstance(journey, SiriJourney)
        # Asked while it is the one handed out: the journey's own XML, whole.
        raw = journey.raw
        assert raw.startswith(b"<EstimatedVehicleJourney")
        assert raw.endswith(b"</EstimatedVehicleJourney>")
        assert journey.raw is raw  # serialised once
        seen.append(journey)
    assert [j.journey_ref for j in seen] == ["good-s18", "good-s18"]
    assert (info.root, info.root_namespace) == ("Siri", "http://www.siri.org.uk/siri")
    assert {"ServiceDelivery", "EstimatedTimetableDelivery"} <= info.deliveries
    assert info.response_at is not None


def test_an_excerpt_not_asked_for_is_gone_once_the_next_is_read() -> None:
    journeys = list(parse_answer(chunks("s18_duplicate_journeys.xml"), AnswerInfo()))
    assert [j.raw for j in journeys] == [b"", b""]
    assert all(len(j.calls) == 2 for j in journeys)


def test_a_vm_answer_tells_its_delivery_and_keeps_activities_raw() -> None:
    info = AnswerInfo()
    (activity, *_) = list(parse_answer(chunks("s11_vm_answer.xml"), info))
    assert isinstance(activity, SiriActivity)
    assert activity.raw.startswith(b"<VehicleActivity")
    assert "VehicleMonitoringDelivery" in info.deliveries
    assert "EstimatedTimetableDelivery" not in info.deliveries


def test_repeated_offsetless_times_are_each_counted() -> None:
    # The corpus answer with local times, its first call arriving when it departs (dwell 0).
    data = (
        (CORPUS / "s14_local_times.xml")
        .read_bytes()
        .replace(
            b"<AimedDepartureTime>2025-10-27T10:00:00</AimedDepartureTime>",
            b"<AimedArrivalTime>2025-10-27T10:00:00</AimedArrivalTime>"
            b"<AimedDepartureTime>2025-10-27T10:00:00</AimedDepartureTime>",
        )
    )
    root = etree.fromstring(data)
    journeys = root.iter("{*}EstimatedVehicleJourney")
    read = [e.text for j in journeys for e in j.iter() if str(e.tag).endswith("Time") and e.text]
    assert len(read) == len(set(read)) + 1  # one text twice within a call
    info = AnswerInfo()
    (journey,) = parse_answer(iter([data]), info)
    assert isinstance(journey, SiriJourney)
    first = journey.calls[0]
    assert first.aimed_arrival == first.aimed_departure is not None
    # Every offset-less time read: the journey's, and the answer's first ResponseTimestamp.
    offsetless = [t for t in read if "+" not in t and not t.endswith("Z")]
    assert info.local_times == len(offsetless) + 1 == len(read) + 1


def test_a_cut_answer_still_names_its_root() -> None:
    info = AnswerInfo()
    with pytest.raises(etree.XMLSyntaxError):
        for _ in parse_answer(chunks("s02_truncated.xml"), info):
            pass
    assert (info.root, info.root_namespace) == ("Siri", "http://www.siri.org.uk/siri")


def test_a_call_text_memo_stays_bounded_and_every_call_reads_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each distinct text of a call is converted once and remembered; an answer naming more
    # distinct texts than a memo keeps (a hostile one may invent endless refs) empties the memo
    # and goes on, every call still read from its own text.
    monkeypatch.setattr(siri_elements, "_TEXT_MAX", 8)
    calls = "".join(
        f"<EstimatedCall><StopPointRef> NSR:Quay:{n} </StopPointRef><Order>{n}</Order>"
        f"<DepartureStatus>{'Cancelled' if n % 7 == 0 else 'onTime'}</DepartureStatus>"
        f"<ExpectedDepartureTime>2025-10-27T10:{n:02d}:00+01:00</ExpectedDepartureTime>"
        "</EstimatedCall>"
        for n in range(1, 41)
    )
    answer = (
        '<Siri xmlns="http://www.siri.org.uk/siri"><ServiceDelivery>'
        "<EstimatedTimetableDelivery><EstimatedJourneyVersionFrame><EstimatedVehicleJourney>"
        "<DatedVehicleJourneyRef>memo-1</DatedVehicleJourneyRef>"
        f"<EstimatedCalls>{calls}</EstimatedCalls></EstimatedVehicleJourney>"
        "</EstimatedJourneyVersionFrame></EstimatedTimetableDelivery></ServiceDelivery></Siri>"
    ).encode()
    (journey,) = parse_answer(iter([answer]), AnswerInfo())
    assert isinstance(journey, SiriJourney)
    assert [c.stop_ref for c in journey.calls] == [f"NSR:Quay:{n}" for n in range(1, 41)]
    assert [c.order for c in journey.calls] == list(range(1, 41))
    assert [c.departure_status for c in journey.calls] == [
        "cancelled" if n % 7 == 0 else "ontime" for n in range(1, 41)
    ]
    assert [c.expected_departure for c in journey.calls] == [
        datetime(2025, 10, 27, 9, n, tzinfo=UTC) for n in range(1, 41)
    ]
    for convert in (siri_elements._stop_ref, siri_elements._order, None):
        assert 0 < len(siri_elements._MEMOS[convert]) <= 8


# The root's default namespace is undeclared before parsing (bare tags cost less to read); what
# comes out must not show it: the same journeys, the answer's namespace, excerpts as lxml writes
# them from the answer as it came, parse errors at the same line and column.
_NAMESPACED_ANSWERS = [
    b'<?xml version="1.0"?><!-- <Not the root> --><Siri xmlns:ns2="http://www.ifopt.org.uk/acsb"'
    b' xmlns="http://www.siri.org.uk/siri" version="2.0"><ServiceDelivery>'
    b'<EstimatedVehicleJourney a="1"><DatedVehicleJourneyRef>j-1</DatedVehicleJourneyRef>'
    b"<EstimatedCalls><EstimatedCall><StopPointRef>NSR:Quay:1</StopPointRef><Order>1</Order>"
    b"</EstimatedCall></EstimatedCalls></EstimatedVehicleJourney>"
    b'<EstimatedVehicleJourney xmlns:a="http://a.example" xmlns="http://elsewhere.example">'
    b"<DatedVehicleJourneyRef>j-2</DatedVehicleJourneyRef></EstimatedVehicleJourney>"
    b"<EstimatedVehicleJourney/><VehicleActivity><VehicleRef>v-1</VehicleRef></VehicleActivity>"
    b'<EstimatedVehicleJourney xmlns:b="http://b.example" b:x="1"><b:Extra/>'
    b"<DatedVehicleJourneyRef>j-7</DatedVehicleJourneyRef></EstimatedVehicleJourney>"
    b'<ns2:EstimatedVehicleJourney xmlns:c="http://c.example">'
    b"<DatedVehicleJourneyRef>j-8</DatedVehicleJourneyRef></ns2:EstimatedVehicleJourney>"
    b"</ServiceDelivery></Siri>",
    b"<Siri version='2.0'  xmlns = 'http://www.siri.org.uk/siri' ><ServiceDelivery>"
    b"<EstimatedVehicleJourney><DatedVehicleJourneyRef>j-3</DatedVehicleJourneyRef>"
    b"</EstimatedVehicleJourney></ServiceDelivery></Siri>",
    b'<s:Siri xmlns:s="http://www.siri.org.uk/siri"><s:ServiceDelivery><s:EstimatedVehicleJourney>'
    b"<s:DatedVehicleJourneyRef>j-4</s:DatedVehicleJourneyRef></s:EstimatedVehicleJourney>"
    b"</s:ServiceDelivery></s:Siri>",
    b'<Siri xmlns="http://not.siri.example"><EstimatedVehicleJourney>'
    b"<DatedVehicleJourneyRef>j-5</DatedVehicleJourneyRef></EstimatedVehicleJourney></Siri>",
    b'<Siri xmlns=""><EstimatedVehicleJourney a="&gt;">'
    b"<DatedVehicleJourneyRef>j-6</DatedVehicleJourneyRef></EstimatedVehicleJourney></Siri>",
]


@pytest.mark.parametrize("answer", _NAMESPACED_ANSWERS)
@pytest.mark.parametrize("size", [1, 5, 64 * 1024])
def test_the_default_namespace_undeclared_for_speed_never_shows(answer: bytes, size: int) -> None:
    tree = etree.fromstring(answer)
    wanted = [
        e
        for e in tree.iter()
        if etree.QName(e).localname in ("EstimatedVehicleJourney", "VehicleActivity")
    ]
    info = AnswerInfo()
    parts = (answer[start : start + size] for start in range(0, len(answer), size))
    read = []
    for element in parse_answer(parts, info):
        read.append(element)
        assert element.raw == etree.tostring(wanted[len(read) - 1])  # as lxml writes the original
    assert len(read) == len(wanted)
    assert (info.root, info.root_namespace) == ("Siri", etree.QName(tree).namespace)
    journeys = [(e, r) for e, r in zip(wanted, read, strict=True) if isinstance(r, SiriJourney)]
    assert [r.journey_ref for _, r in journeys] == [
        e.findtext("{*}DatedVehicleJourneyRef") for e, _ in journeys
    ]
    first = read[0]
    if isinstance(first, SiriJourney) and first.calls:
        assert [(c.stop_ref, c.order) for c in first.calls] == [("NSR:Quay:1", 1)]


def test_a_root_declaring_the_default_namespace_twice_is_still_malformed() -> None:
    answer = b'<Siri xmlns="http://www.siri.org.uk/siri" xmlns="http://x.example"></Siri>'
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(answer)
    with pytest.raises(etree.XMLSyntaxError):
        list(parse_answer(iter([answer]), AnswerInfo()))


def test_the_default_namespace_is_undeclared_in_place() -> None:
    for answer in _NAMESPACED_ANSWERS[:2]:
        undeclared = siri_xml._undeclare_default_namespace(answer)
        assert undeclared is not None
        head, namespace = undeclared
        assert namespace == "http://www.siri.org.uk/siri"
        assert len(head) == len(answer)  # every byte after it where it was
        assert etree.QName(etree.fromstring(head)).namespace is None
    # Not complete yet: wait for more bytes; nothing a URI would escape: as written.
    assert siri_xml._undeclare_default_namespace(b'<Siri xmlns="http://www.siri') is None
    odd = b'<Siri xmlns="http://x.example/?a&amp;b"/>'
    assert siri_xml._undeclare_default_namespace(odd) == (odd, None)


@pytest.mark.parametrize("size", [3, 64 * 1024])
def test_a_parse_error_names_the_line_and_column_of_the_answer_as_it_came(size: int) -> None:
    answer = (
        b'<Siri xmlns="http://www.siri.org.uk/siri" version="2.0"><ServiceDelivery>'
        b"<EstimatedVehicleJourney><LineRef>L</LineRef></EstimatedVehicleJourney>"
        b"<EstimatedVehicleJourney><LineRef>L</Line></EstimatedVehicleJourney></ServiceDelivery>"
        b"</Siri>"
    )
    with pytest.raises(etree.XMLSyntaxError) as expected:
        etree.fromstring(answer, etree.XMLParser())
    parts = (answer[start : start + size] for start in range(0, len(answer), size))
    read = []
    with pytest.raises(etree.XMLSyntaxError) as raised:
        read.extend(parse_answer(parts, AnswerInfo()))
    assert str(raised.value) == str(expected.value)
    assert "column" in str(raised.value)
    assert len(read) == 1  # the journey complete before the fault
