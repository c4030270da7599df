"""notation: a 2-bar groove round-trips through MusicXML (notes, bars, noteheads)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from drumtx.drums import ROLAND9, Hit
from drumtx.notation import DIVISIONS, musicxml_bytes, value_pieces, voice_events
from drumtx.tempo import TempoMap

C = ROLAND9.index


def groove(start_sec: float = 0.0, spb: float = 0.5) -> list[Hit]:
    """Two bars: 8th hats (the first of each bar accented), kick on 1 and 3 and the
    "and" of 3, snare on 2 and 4, a ghost snare on the last 16th, an open hat on the
    "and" of 4 of bar 2, a crash on the first downbeat."""
    hits = [Hit(start_sec, C("CR"), 110)]
    for bar in range(2):
        t0 = start_sec + bar * 4 * spb
        for eighth in range(8):
            cls = C("OH") if bar == 1 and eighth == 7 else C("HH")
            hits.append(Hit(t0 + eighth * spb / 2, cls, 120 if eighth == 0 else 80))
        hits += [Hit(t0 + b * spb, C("KD"), 100) for b in (0, 2, 2.5)]
        hits += [Hit(t0 + b * spb, C("SD"), 105) for b in (1, 3)]
        hits.append(Hit(t0 + 3.75 * spb, C("SD"), 30))
    return hits


def parse(data: bytes) -> ET.Element:
    assert data.startswith(b"<?xml")
    return ET.fromstring(data)


def read_back(root: ET.Element) -> set[tuple[str, int, str, str]]:
    """(measure, tick, instrument, notehead) of every note: position from the notes'
    durations, voices rewound by <backup>."""
    found = set()
    for measure in root.iter("measure"):
        tick = 0
        last_start = 0
        for item in measure:
            if item.tag == "backup":
                tick -= int(item.findtext("duration"))
            elif item.tag == "note":
                start = last_start if item.find("chord") is not None else tick
                if item.find("chord") is None:
                    tick += int(item.findtext("duration"))
                    last_start = start
                if item.find("unpitched") is not None:
                    head = item.find("notehead")
                    name = "normal" if head is None else head.text
                    if head is not None and head.get("parentheses") == "yes":
                        name = "(" + name + ")"
                    instrument = item.find("instrument").get("id").split("-")[1]
                    found.add((measure.get("number"), start, instrument, name))
    return found


def test_two_bar_groove_round_trips() -> None:
    tm = TempoMap.constant(120.0)
    root = parse(musicxml_bytes(groove(), ROLAND9.codes, ROLAND9.gm_notes, tm,
                                end_sec=4.0))  # fmt: skip
    measures = list(root.iter("measure"))
    assert [m.get("number") for m in measures] == ["1", "2"]
    assert root.findtext(".//divisions") == str(DIVISIONS)
    assert root.findtext(".//time/beats") == "4"
    assert root.findtext(".//time/beat-type") == "4"
    assert root.findtext(".//clef/sign") == "percussion"
    assert root.findtext(".//metronome/per-minute") == "120"
    for measure in measures:  # each voice fills the bar exactly
        for voice in ("1", "2"):
            notes = [n for n in measure.iter("note") if n.findtext("voice") == voice]
            total = sum(
                int(n.findtext("duration")) for n in notes if n.find("chord") is None
            )
            assert total == 4 * DIVISIONS
    expected = set()
    heads = {"HH": "x", "OH": "x", "CR": "x", "KD": "normal", "SD": "normal"}
    for hit in groove():
        code = ROLAND9.codes[hit.cls]
        bar, beat = divmod(hit.time_sec / 0.5, 4)
        head = "(normal)" if hit.velocity <= 40 else heads[code]
        expected.add((str(int(bar) + 1), round(beat * DIVISIONS), code, head))
    assert read_back(root) == expected


def test_marks_beams_and_stems() -> None:
    root = parse(musicxml_bytes(groove(), ROLAND9.codes, ROLAND9.gm_notes,
                                TempoMap.constant(120.0), end_sec=4.0))  # fmt: skip
    notes = list(root.iter("note"))
    accents = [n for n in notes if n.find("notations/articulations/accent") is not None]
    assert {n.find("instrument").get("id") for n in accents} == {"P1-HH", "P1-CR"}
    opens = [n for n in notes if n.find("notations/technical/open-string") is not None]
    assert [n.find("instrument").get("id") for n in opens] == ["P1-OH"]
    played = [n for n in notes if n.find("instrument") is not None]
    kicks = [n for n in played if n.find("instrument").get("id") == "P1-KD"]
    assert kicks and all(n.findtext("stem") == "down" for n in kicks)
    assert {b.text for b in root.iter("beam")} >= {"begin", "end"}
    midi = {
        m.get("id"): m.findtext("midi-unpitched") for m in root.iter("midi-instrument")
    }
    assert midi["P1-KD"] == "37" and midi["P1-SD"] == "39"  # GM note + 1


def test_pickup_bar_is_an_implicit_measure_zero() -> None:
    # First bar line at 0.375 s (3/16 at 120 BPM), the groove starting there.
    tm = TempoMap((0.0, 0.75), (0.5, 0.5), ((0.0, 3, 16), (0.75, 4, 4)))
    hits = groove(start_sec=0.375) + [Hit(0.125, C("SD"), 90)]
    root = parse(musicxml_bytes(hits, ROLAND9.codes, ROLAND9.gm_notes, tm,
                                end_sec=4.375))  # fmt: skip
    measures = list(root.iter("measure"))
    assert [m.get("number") for m in measures] == ["0", "1", "2"]
    assert measures[0].get("implicit") == "yes"
    assert measures[0].findtext(".//time/beats") == "4"  # the piece's meter
    voice1 = [n for n in measures[0].iter("note") if n.findtext("voice") == "1"]
    assert sum(int(n.findtext("duration")) for n in voice1) == 18  # a dotted 8th
    assert ("0", 6, "SD", "normal") in read_back(root)


def test_triplet_grid_writes_time_modification() -> None:
    spb = 0.5
    hits = [Hit(b * spb / 3, C("RD"), 80) for b in range(12)]  # 8th-note triplets
    root = parse(musicxml_bytes(hits, ROLAND9.codes, ROLAND9.gm_notes,
                                TempoMap.constant(120.0), step_beats=1 / 6,
                                end_sec=2.0))  # fmt: skip
    rides = [n for n in root.iter("note") if n.find("unpitched") is not None]
    assert len(rides) == 12
    assert all(n.findtext("time-modification/actual-notes") == "3" for n in rides)
    assert all(n.findtext("type") == "eighth" for n in rides)


def test_note_values_and_voice_events() -> None:
    assert value_pieces(24) == [24]
    assert value_pieces(15) == [12, 3]  # an 8th and a 32nd
    assert value_pieces(20) == [18, 2]
    events = voice_events([], 96)
    assert events == [(0, 96, [])]
    # A class the drum key does not know is left out: the bar is a whole-bar rest.
    root = parse(musicxml_bytes([Hit(0.1, 0, 90)], ("XX",), (36,),
                                TempoMap.constant(120.0)))  # fmt: skip
    rests = [n.find("rest") for n in root.iter("note")]
    assert [r.get("measure") for r in rests] == ["yes", "yes"]  # both voices


def test_a_hit_snapped_onto_the_closing_bar_line_opens_a_bar() -> None:
    """The audio ends just before a bar line and the last hit snaps onto it: the hit
    starts one more bar (it used to fall a tick short of the bar's end and crash)."""
    hits = [Hit(0.0, C("KD"), 100), Hit(1.99, C("CR"), 100)]
    for end_sec in (1.99, 2.0):
        root = parse(musicxml_bytes(hits, ROLAND9.codes, [36] * 9,
                                    TempoMap.constant(120.0),
                                    end_sec=end_sec))  # fmt: skip
        assert ("2", 0, "CR", "x") in read_back(root)
        assert len(list(root.iter("measure"))) == 2
