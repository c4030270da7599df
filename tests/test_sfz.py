"""SFZ kits: parsing (includes, defines, inheritance), what a note-on plays (velocity
layers, round robins, random layers, chokes), levels and pitch, microphones, and the
errors a broken kit gets. Every kit here is written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumtx import synth
from drumtx.errors import ConfigError
from drumtx.make_dataset import make_dataset
from drumtx.midi import Note
from drumtx.synth import sfz
from drumtx.synth.dsp import PREROLL_SEC

SR = 44_100


def tone(path: Path, length_sec: float, *, amp: float = 0.5, stereo: bool = False):
    """A 1 kHz tone of ``length_sec``: a sample's length tells which one played."""
    t = np.arange(round(length_sec * SR)) / SR
    audio = (amp * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    if stereo:  # left only
        audio = np.stack([audio, np.zeros_like(audio)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR)
    return path


def write_kit(folder: Path, body: str, samples: dict[str, float], name="kit.sfz"):
    for sample, length in samples.items():
        tone(folder / "s" / sample, length)
    path = folder / name
    path.write_text(body)
    return path


def played_sec(kit: synth.Kit, voice: str, velocity: int, rng=None) -> float:
    """Length of the sound a strike plays, pre-roll excluded."""
    rng = np.random.default_rng(0) if rng is None else rng
    hit = kit.strike(voice, velocity / 127, SR, rng)
    return hit.sound.audio.size / SR - PREROLL_SEC


BASIC = """
<control> default_path=s/
<group> key=36
<region> lovel=1 hivel=63 sample=soft.wav
<region> lovel=64 hivel=127 sample=loud.wav
<group> key=38
<region> sample=snare.wav
"""
BASIC_SAMPLES = {"soft.wav": 0.1, "loud.wav": 0.2, "snare.wav": 0.3}


def test_velocity_layers_pick_their_sample(tmp_path: Path) -> None:
    kit = synth.load_kit(f"sfz:{write_kit(tmp_path, BASIC, BASIC_SAMPLES)}")
    assert played_sec(kit, "kick", 30) == pytest.approx(0.1, abs=0.002)
    assert played_sec(kit, "kick", 63) == pytest.approx(0.1, abs=0.002)
    assert played_sec(kit, "kick", 64) == pytest.approx(0.2, abs=0.002)
    assert played_sec(kit, "snare", 127) == pytest.approx(0.3, abs=0.002)
    assert {"kick", "snare", "cross_stick"} <= set(kit.voices)
    assert "hh_closed" not in kit.voices  # no key for it: its notes are not labelled


def test_round_robins_rotate_and_restart_each_render(tmp_path: Path) -> None:
    body = """<group> key=36 seq_length=3
<region> seq_position=1 sample=s/a.wav
<region> seq_position=2 sample=s/b.wav
<region> seq_position=3 sample=s/c.wav
<region> key=38 sample=s/a.wav"""
    kit = sfz.SfzKit(
        write_kit(tmp_path, body, {"a.wav": 0.1, "b.wav": 0.2, "c.wav": 0.3})
    )
    lengths = [round(played_sec(kit, "kick", 100), 2) for _ in range(4)]
    assert lengths == [0.1, 0.2, 0.3, 0.1]
    notes = [Note(0.1 + 0.5 * i, 36, 100) for i in range(3)]
    first, again = kit.render(notes, 2.0, SR), kit.render(notes, 2.0, SR)
    np.testing.assert_array_equal(first, again)


def test_random_layers_split_by_lorand_hirand(tmp_path: Path) -> None:
    body = """<group> key=36
<region> lorand=0 hirand=0.5 sample=s/a.wav
<region> lorand=0.5 hirand=1 sample=s/b.wav
<region> key=38 sample=s/a.wav"""
    kit = sfz.SfzKit(write_kit(tmp_path, body, {"a.wav": 0.1, "b.wav": 0.2}))
    rng = np.random.default_rng(3)
    seen = {round(played_sec(kit, "kick", 100, rng), 2) for _ in range(40)}
    assert seen == {0.1, 0.2}  # each hit plays exactly one of them


def write_hat_kit(folder: Path, body: str) -> Path:
    """A kit file whose samples are a kick/snare click, a short closed hat and an
    open hat that rings for 2 s."""
    return write_kit(folder, body, {"k.wav": 0.1, "closed.wav": 0.05, "open.wav": 2.0})


def open_hat_rings_until_closed(kit: synth.Kit) -> bool:
    """The open hat (46) rings on alone, and stops when the closed hat (42) follows."""
    ring = kit.render([Note(0.1, 46, 100)], 2.0, SR)
    choked = kit.render([Note(0.1, 46, 100), Note(0.5, 42, 100)], 2.0, SR)
    late = slice(int(0.7 * SR), int(1.5 * SR))
    return np.abs(ring[late]).max() > 0.05 and np.abs(choked[late]).max() < 1e-4


def test_closed_hat_chokes_the_ringing_open_hat(tmp_path: Path) -> None:
    body = """<control> default_path=s/
<region> key=36 sample=k.wav
<region> key=38 sample=k.wav
<group> group=1 group_label=Hihat Closed
<region> key=42 sample=closed.wav
<group> group=2 off_by=1 group_label=Hihat Open
<region> key=46 sample=open.wav"""
    kit = sfz.SfzKit(write_hat_kit(tmp_path, body))
    assert kit.key_map["hh_open"] == 46 and kit.key_map["hh_closed"] == 42
    assert open_hat_rings_until_closed(kit)


def test_hat_states_named_under_a_hihat_master_close_by_silent_regions(
    tmp_path: Path,
) -> None:
    """SamsSonor's layout: the state in the group label, 'Hihat' in the master, and
    the closed hat choking the open one through a silent region of the open one's
    off_by group (read alone, 'Hihat' made every state a closed hat)."""
    body = """<control> default_path=s/
<master> master_label=Kick
<region> key=36 sample=k.wav region_label=V01
<master> master_label=Snare
<group> group_label=Center
<region> key=38 sample=k.wav
<group> group_label=Rimshot
<region> key=40 sample=k.wav
<master> master_label=Hihat
<group> key=42 group=7 off_by=8 group_label=Closed
<region> sample=closed.wav region_label=V01
<group> key=46 group=13 off_by=14 group_label=Open Clang
<region> sample=open.wav region_label=V01
<group> end=-1 sample=*silence
<region> key=42 group=14"""
    kit = sfz.SfzKit(write_hat_kit(tmp_path, body))
    assert (kit.key_map["hh_closed"], kit.key_map["hh_open"]) == (42, 46)
    assert kit.key_map["rimshot"] == 40 and kit.key_map["snare"] == 38
    assert open_hat_rings_until_closed(kit)
    # its renders differ from those made before silent regions were read, so its
    # fingerprint does; a silent region that closes nothing ringing leaves it alone
    assert kit._silences_close()
    idle = sfz.SfzKit(write_kit(
        tmp_path, body.replace("key=42 group=14", "key=42 group=3"), {}, "idle.sfz"
    ))  # fmt: skip
    assert idle.key_map["hh_open"] == 46 and not idle._silences_close()
    assert not open_hat_rings_until_closed(idle)
    # a silent region for loud notes only: a soft closed hat leaves the open one be
    loud = sfz.SfzKit(write_kit(
        tmp_path, body.replace("key=42 group=14", "key=42 group=14 lovel=100"), {},
        "loud.sfz",
    ))  # fmt: skip
    assert loud._silences_close() and open_hat_rings_until_closed(loud)
    soft = loud.render([Note(0.1, 46, 100), Note(0.5, 42, 60)], 2.0, SR)
    assert np.abs(soft[int(0.7 * SR) : int(1.5 * SR)]).max() > 0.05
    # choke groups are the kit's own: another kit's group 14 is another group
    hit = kit.strike("hh_open", 0.8, SR, np.random.default_rng(0))
    assert hit.group == f"{kit.name}#14"


def test_volume_pan_and_tune_act(tmp_path: Path) -> None:
    tone(tmp_path / "s" / "left.wav", 0.2, stereo=True)
    body = """<control> default_path=s/
<global> amp_veltrack=0
<region> key=36 sample=t.wav
<region> key=38 sample=t.wav volume=-6.0206
<region> key=42 sample=left.wav pan=-100
<region> key=46 sample=left.wav pan=100
<region> key=49 sample=t.wav tune=1200
<region> key=51 sample=t.wav transpose=-12"""
    kit = sfz.SfzKit(write_kit(tmp_path, body, {"t.wav": 0.2}))
    rng = np.random.default_rng(0)

    def level(voice: str) -> float:
        hit = kit.strike(voice, 1.0, SR, rng)
        return hit.gain * float(np.abs(hit.sound.audio).max())

    assert level("snare") / level("kick") == pytest.approx(0.5, rel=0.01)
    assert level("hh_closed") > 100 * level("hh_open")  # hard right of a left-only
    assert played_sec(kit, "crash1", 100) == pytest.approx(0.1, abs=0.003)  # octave up
    assert played_sec(kit, "ride", 100) == pytest.approx(0.4, abs=0.003)  # octave down


def test_velocity_curves(tmp_path: Path) -> None:
    def region(opcodes: str) -> sfz.Region:
        path = tmp_path / f"r{abs(hash(opcodes))}.sfz"
        path.write_text(f"<region> key=36 sample=x.wav {opcodes}")
        return sfz.read_sfz(path)[0]

    default = region("")
    assert sfz.velocity_gain(127, default) == pytest.approx(1.0)
    assert sfz.velocity_gain(64, default) == pytest.approx((64 / 127) ** 2)
    assert sfz.velocity_gain(10, region("amp_veltrack=0")) == pytest.approx(1.0)
    half = region("amp_veltrack=50")
    assert sfz.velocity_gain(64, half) == pytest.approx(1 - 0.5 * (1 - (64 / 127) ** 2))
    curve = region("amp_velcurve_64=1")  # 0 at 0, 1 from 64 up
    assert sfz.velocity_gain(32, curve) == pytest.approx(0.5)
    assert sfz.velocity_gain(100, curve) == pytest.approx(1.0)
    shaped = region("amp_velcurve_1=0.2 amp_velcurve_127=0.8")
    assert sfz.velocity_gain(64, shaped) == pytest.approx(0.2 + 0.6 * 63 / 126)


def test_includes_defines_inheritance_and_note_names(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keys.txt").write_text(
        "#define $KICK c2   #define $SN 38\n#define $dir s\n"
    )
    (tmp_path / "data" / "snare.txt").write_text(
        "<group> key=$SN group_label=Snare /* the snare */ volume=-3\n"
        "<region> sample=$name.wav // a comment\n"
    )
    body = """#include "data/keys.txt"
<control> default_path=$dir/
<global> global_volume=-3
<master> master_label=Kick
<group> key=$KICK
<region> sample=Kick Drum 1.wav lovel=1
#define $name snare_one
#include "data/snare.txt"
"""
    kit = sfz.SfzKit(
        write_kit(tmp_path, body, {"Kick Drum 1.wav": 0.1, "snare_one.wav": 0.2})
    )
    assert kit.key_map["kick"] == 36 and kit.key_map["snare"] == 38
    regions = kit.mics[0].regions
    assert [r.sample.name for r in regions] == ["Kick Drum 1.wav", "snare_one.wav"]
    assert regions[0].gain == pytest.approx(10 ** (-3 / 20))  # <global> reaches it
    assert regions[1].gain == pytest.approx(10 ** (-6 / 20))  # global_ adds to volume
    assert regions[1].label == "Snare|Kick"  # the group's label before the master's
    assert sfz.parse_key("c#4") == 61 and sfz.parse_key("Bb3") == 58


def test_a_region_written_back_reads_the_same(tmp_path: Path) -> None:
    """region_sfz: every field drumtx plays reads back from the written line, the
    sample found from another folder, a label with spaces kept."""
    tone(tmp_path / "kit" / "s" / "Ride Tip 3.wav", 0.2)
    body = """<control> default_path=s/
<global> global_volume=-2 amp_veltrack=80
<group> group_label=Ride Tip lokey=50 hikey=52 pitch_keycenter=51 tune=-30
<region> sample=Ride Tip 3.wav lovel=20 hivel=90 lorand=0.25 hirand=0.5
 seq_length=3 seq_position=2 amplitude=50 pan=-40 transpose=1 pitch_keytrack=50
 offset=100 end=5000 amp_velcurve_64=0.7"""
    (tmp_path / "kit" / "k.sfz").write_text(body)
    [region] = sfz.read_sfz(tmp_path / "kit" / "k.sfz")
    out = tmp_path / "elsewhere" / "deeper"
    out.mkdir(parents=True)
    root = tmp_path / "kit"
    (out / "copy.sfz").write_text(
        "<control> default_path=../../kit/\n" + sfz.region_sfz(region, root) + "\n"
    )
    [back] = sfz.read_sfz(out / "copy.sfz")
    assert back.sample.resolve() == region.sample.resolve()
    assert back.gain == pytest.approx(region.gain, rel=1e-4)
    assert region.gain == pytest.approx(0.5 * 10 ** (-2 / 20))
    same = ("lokey", "hikey", "lovel", "hivel", "lorand", "hirand", "seq_length",
            "seq_position", "pan", "tune_cents", "keycenter", "keytrack_cents",
            "offset", "end", "velcurve", "veltrack", "label")  # fmt: skip
    assert [getattr(back, f) for f in same] == [getattr(region, f) for f in same]
    assert (back.lokey, back.tune_cents, back.label) == (50, 70.0, "Ride Tip")


def test_regions_a_note_on_never_plays_are_left_out(tmp_path: Path) -> None:
    body = """<control> set_cc20=0 set_hdcc21=1
<region> key=36 sample=k.wav
<region> key=36 sample=k.wav trigger=release
<region> key=36 sample=k.wav locc20=1
<region> key=36 sample=k.wav locc21=100
<region> key=36 sample=*silence
<region> key=36 sample=k.wav on_locc64=1 on_hicc64=127"""
    path = tmp_path / "k.sfz"
    path.write_text(body)
    assert len(sfz.read_sfz(path)) == 2  # the plain one and the one cc21 lets through


def test_labels_map_keys_to_voices_and_gm_fills_the_rest() -> None:
    labels = {35: "KdrumL", 38: "Snare", 37: "SnareRest", 48: "Tom1", 47: "Tom2",
              45: "Tom3", 41: "Tom4", 42: "HihatClosed", 46: "HihatOpen",
              49: "CrashL", 52: "China", 57: "CrashR", 51: "RideR", 53: "RideRBell",
              50: "Snare Off"}  # fmt: skip
    voices = sfz.map_keys(labels)
    assert voices["kick"] == 35 and voices["cross_stick"] == 38  # not the 'rest' hit
    assert (voices["tom_high"], voices["tom_mid"], voices["tom_low"]) == (48, 47, 41)
    assert (voices["crash1"], voices["crash2"]) == (49, 57)  # the china comes last
    assert voices["ride_bell"] == 53 and 50 not in voices.values()
    assert sfz.map_keys({36: "", 38: "", 42: "", 43: ""}) == {
        **dict.fromkeys(["kick"], 36),
        **dict.fromkeys(["snare", "cross_stick", "rimshot"], 38),
        **dict.fromkeys(["hh_closed", "hh_closed_edge", "hh_pedal"], 42),
        **dict.fromkeys(["tom_low", "tom_low_rim"], 43),
    }


def write_mics(folder: Path) -> Path:
    """A two-drum kit recorded by a close mic, an overhead and a room mic."""
    for mic, length in (("Kick close", 0.1), ("Overhead left", 0.2), ("Room", 0.3)):
        tone(folder / "s" / f"{mic}.wav", length)
        (folder / f"{mic}.sfz").write_text(
            f"<region> key=36 sample=s/{mic}.wav\n<region> key=38 sample=s/{mic}.wav\n"
        )
    (folder / "Kick trigger.sfz").write_text("<region> key=36 sample=s/none.wav\n")
    return folder


def test_every_mic_plays_at_a_balance_drawn_per_render(tmp_path: Path) -> None:
    kit = synth.load_kit(f"sfz:{write_mics(tmp_path / 'kit')}")
    kinds = {m.name: m.kind for m in kit.mics}
    assert kinds == {"Kick close": "close", "Overhead left": "overhead", "Room": "room"}
    assert played_sec(kit, "kick", 100) == pytest.approx(0.3, abs=0.002)  # all mics
    renders = [kit.render([Note(0.25, 36, 100)], 1.0, SR, seed=s) for s in range(6)]
    assert len({round(float(np.abs(r[int(0.4 * SR) :]).max()), 4) for r in renders}) > 3
    for audio in renders:  # every balance keeps the hit on its MIDI time
        assert (
            abs(np.argmax(np.abs(audio) > 0.1 * np.abs(audio).max()) / SR - 0.25)
            < 0.002
        )
    np.testing.assert_array_equal(
        renders[2], kit.render([Note(0.25, 36, 100)], 1.0, SR, seed=2)
    )


def test_kit_name_round_trips_through_the_csv(tmp_path: Path) -> None:
    path = write_kit(tmp_path, BASIC, BASIC_SAMPLES)
    kit = synth.load_kit(f"sfz:{path}")
    again = synth.load_kit(kit.name)
    assert again.name == kit.name and again.fingerprint == kit.fingerprint
    out = make_dataset(tmp_path / "out", midi_dir=None, kits=[f"sfz:{path}"], limit=1,
                       seed=0, max_sec=2.0)  # fmt: skip
    csv = (out / "e-gmd-v1.0.0.csv").read_text()
    assert f"sfz:{path}" in csv


@pytest.mark.parametrize(
    ("body", "samples", "message"),
    [
        ("<group> key=36", {}, "has no <region>"),
        ('#include "nowhere.txt"\n<region> key=36 sample=s/a.wav', {}, "not found"),
        ("<region> key=36 sample=s/a.wav", {"a.wav": 0.1}, "no snare"),
        ("<region> key=36 sample=s/a.wav\n<region> key=38 sample=s/gone.wav",
         {"a.wav": 0.1}, "misses 1 sample"),
        ("<region> key=zz sample=s/a.wav", {"a.wav": 0.1}, "bad key"),
    ],
)  # fmt: skip
def test_broken_kits_get_a_clear_error_with_a_hint(
    tmp_path: Path, body: str, samples: dict[str, float], message: str
) -> None:
    path = write_kit(tmp_path, body, samples)
    with pytest.raises(ConfigError, match=message) as info:
        synth.load_kit(f"sfz:{path}")
    assert info.value.hint
    with pytest.raises(ConfigError, match="no SFZ kit") as info:
        synth.load_kit(f"sfz:{tmp_path / 'missing.sfz'}")
    assert "sfz" in info.value.hint.lower()


@pytest.mark.parametrize(
    "folder", ["AVL_Drumkits_Red_Zeppelin", "avldrums", "BlackPearl"]
)
def test_reserved_kits_are_refused_as_sfz(tmp_path: Path, folder: str) -> None:
    path = write_kit(tmp_path / folder, BASIC, BASIC_SAMPLES)
    with pytest.raises(ConfigError, match="reserved for independent evaluation"):
        make_dataset(tmp_path / "out", midi_dir=None, kits=[f"sfz:{path}"], limit=1,
                     seed=0, max_sec=2.0)  # fmt: skip
    assert not (tmp_path / "out").exists()
    link = tmp_path / "innocent"
    link.symlink_to(tmp_path / folder)
    with pytest.raises(ConfigError, match="reserved"):
        synth.load_kit(f"sfz:{link}")
