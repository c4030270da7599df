"""Kits that sound recorded (studio, virtual, SoundFont drum kits) and the reserved
evaluation SoundFonts that nothing may train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drumtx import synth
from drumtx.errors import ConfigError
from drumtx.make_dataset import make_dataset
from drumtx.midi import Note
from drumtx.synth import soundfont
from drumtx.synth.room import Room, image_source_ir
from drumtx.synth.studio import StudioKit, TunedToms, VirtualKit

SR = 44_100
INSTALLED_FONTS = soundfont.list_soundfonts()
needs_fluidsynth = pytest.mark.skipif(
    not (soundfont.fluidsynth_available() and INSTALLED_FONTS),
    reason="needs libfluidsynth, pyfluidsynth and a General MIDI SoundFont",
)


def energy_onset_sec(audio: np.ndarray, sample_rate: int = SR) -> float:
    """First time the 1 ms RMS envelope reaches 10 % of its maximum."""
    win = max(1, sample_rate // 1000)
    power = np.convolve(audio.astype(np.float64) ** 2, np.ones(win) / win, "full")
    rms = np.sqrt(power[: audio.size])
    return float(np.argmax(rms >= 0.1 * rms.max())) / sample_rate


PITCHES = (36, 38, 42, 46, 43, 48, 49, 51)  # kick .. ride, one per family


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_studio_hits_start_within_2ms_of_their_midi_time(seed: int) -> None:
    kit = StudioKit(synth.SynthKit(seed), seed=seed)
    for pitch in PITCHES:
        for velocity in (20, 127):
            audio = kit.render([Note(0.3, pitch, velocity)], 1.5, SR)
            assert abs(energy_onset_sec(audio) - 0.3) < 0.002, (pitch, velocity)


def test_studio_is_deterministic_and_each_session_differs() -> None:
    notes = [Note(0.1 + 0.25 * i, PITCHES[i % len(PITCHES)], 100) for i in range(12)]
    base = synth.SynthKit(4)
    a = StudioKit(base, 1).render(notes, 3.5, SR)
    b = StudioKit(synth.SynthKit(4), 1).render(notes, 3.5, SR)
    c = StudioKit(base, 2).render(notes, 3.5, SR)
    dry = base.render(notes, 3.5, SR)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3) and not np.allclose(a, dry, atol=1e-3)
    assert StudioKit(base, 1).name == base.name  # the CSV names the kit, not the room


def _pitch_hz(audio: np.ndarray) -> float:
    """The strongest spectral peak from 40 Hz to 1.5 kHz: a synthesised tom's pitch."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64), 1 << 17))
    freqs = np.fft.rfftfreq(1 << 17, 1 / SR)
    band = (freqs > 40) & (freqs < 1500)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_studio_tunes_the_toms_as_a_set_and_mostly_upward() -> None:
    """A studio retunes its three toms together (the high tom stays above the low one)
    over -3..+9 semitones, so a model also hears toms tuned as high as a snare."""
    base = synth.SynthKit(4)
    dry = {v: _pitch_hz(base.strike(v, 0.8, SR, np.random.default_rng(0)).sound.audio)
           for v in ("tom_high", "tom_low")}  # fmt: skip
    shifts = []
    for seed in range(24):
        kit = StudioKit(base, seed)
        shift = {v: 12 * np.log2(_pitch_hz(kit.strike(v, 0.8, SR,
                                                      np.random.default_rng(0)
                                                      ).sound.audio) / dry[v])
                 for v in dry}  # fmt: skip
        assert abs(shift["tom_high"] - shift["tom_low"]) <= 2.1, (seed, shift)
        shifts.append(shift["tom_high"])
    assert -4.1 <= min(shifts) and max(shifts) <= 10.1
    assert sum(s >= 5 for s in shifts) >= 6  # a quarter of the sessions or more
    assert sum(s <= 0 for s in shifts) >= 2


def test_the_studio_of_before_tunes_each_tom_alone_and_all_else_as_now() -> None:
    """``toms_as_set=False`` is the studio the card's held-out set was rendered in:
    each tom alone by up to 3 semitones, no set offset, its old fingerprint; the room,
    microphones, balance and every other voice's tuning drawn as they are now."""
    base = synth.SynthKit(4)
    for seed in range(12):
        now, before = StudioKit(base, seed), StudioKit(base, seed, toms_as_set=False)
        assert before.fingerprint == f"studio:{seed}:{base.fingerprint}"
        assert now.fingerprint != before.fingerprint
        assert before.room == now.room
        pairs = zip(before._mics, now._mics, strict=True)
        assert all(np.array_equal(p, q) and g == h for (p, g), (q, h) in pairs)
        assert before._gain == now._gain
        toms = ("tom_high", "tom_mid", "tom_low")
        for family, semitones in before._tune.items():
            if family not in toms:
                assert semitones == now._tune[family]
        # the same draws: each tom's own move, 3 semitones a unit then, 1 now
        for a, b in ((0, 1), (0, 2)):
            then = before._tune[toms[a]] - before._tune[toms[b]]
            assert then == pytest.approx(3 * (now._tune[toms[a]] - now._tune[toms[b]]))
        assert all(abs(before._tune[t]) <= 3.0 for t in toms)
    spread = [StudioKit(base, s, False)._tune["tom_high"] for s in range(200)]
    assert min(spread) < -2.0 and max(spread) > 2.0  # the old +-3, not the new +-1


def test_tuned_toms_move_as_a_set_and_nothing_else_changes() -> None:
    """Outside a studio the toms are tuned as a studio tunes them: the set together
    over -3..+9 semitones, each tom within one of the set; other voices untouched."""
    base = synth.SynthKit(4)
    dry = {v: _pitch_hz(base.strike(v, 0.8, SR, np.random.default_rng(0)).sound.audio)
           for v in ("tom_high", "tom_low")}  # fmt: skip
    for seed in range(8):  # the audio follows the drawn tuning
        kit = TunedToms(base, seed)
        for v in dry:
            hit = kit.strike(v, 0.8, SR, np.random.default_rng(0))
            heard = _pitch_hz(hit.sound.audio)
            assert 12 * np.log2(heard / dry[v]) == pytest.approx(
                kit.semitones[v], abs=0.6
            ), (seed, v)
        for voice in ("kick", "snare", "hh_closed", "ride"):
            a = base.strike(voice, 0.8, SR, np.random.default_rng(1))
            b = kit.strike(voice, 0.8, SR, np.random.default_rng(1))
            assert b.sound is a.sound and b.gain == a.gain
    tunings = np.array([list(TunedToms(base, s).semitones.values())
                        for s in range(400)])  # fmt: skip
    assert np.ptp(tunings, axis=1).max() <= 2.0  # each tom within 1 of the set's offset
    assert -4.0 <= tunings.min() and tunings.max() <= 10.0
    assert 0.25 < np.mean(tunings[:, 0] >= 5) < 0.42  # a third raised 5 or more
    assert 0.15 < np.mean(tunings[:, 0] <= 0) < 0.35
    assert TunedToms(base, 3).fingerprint != TunedToms(base, 4).fingerprint
    assert TunedToms(base, 3).semitones == TunedToms(base, 3).semitones  # seeded
    # a tom's onset moves with its retuning: rendered, a hit still starts on its note
    audio = TunedToms(base, 5).render([Note(0.2, 48, 100)], 0.8, SR)
    assert abs(energy_onset_sec(audio) - 0.2) < 0.002


def test_image_source_direct_path_and_first_reflection() -> None:
    room = Room((6.0, 5.0, 3.0), absorption=0.3)
    src, mic = np.array([2.0, 2.5, 1.5]), np.array([4.0, 2.5, 1.5])  # 2 m apart
    ir, direct_sec = image_source_ir(room, src, mic, SR, max_order=1)
    assert direct_sec == pytest.approx(2.0 / 343.0)
    first = int(np.flatnonzero(ir > 1e-6)[0])
    assert first == int(2.0 / 343.0 * SR)  # nothing arrives before the direct sound
    # The direct sound (1/4 pi r) is the loudest arrival; a wall bounce is weaker.
    peak = int(np.argmax(ir))
    assert abs(peak - 2.0 / 343.0 * SR) <= 1
    assert ir[peak] + ir[peak + 1] == pytest.approx(1 / (4 * np.pi * 2.0), rel=1e-3)
    assert room.rt60_sec == pytest.approx(0.161 * 90 / (126 * 0.3))


def test_virtual_kit_takes_families_from_different_donors() -> None:
    donors = [synth.SynthKit(s) for s in range(6)]
    kits = [VirtualKit(seed, donors) for seed in range(8)]
    for kit in kits:
        assert set(kit.voices) == set(donors[0].voices)  # synth kits sound every voice
    # Across seeds, a kit's kick and snare often come from different donors.
    mixed = [k for k in kits if k._donor_of["kick"] is not k._donor_of["snare"]]
    assert len(mixed) >= 4
    audio = kits[0].render([Note(0.2, 38, 100)], 0.8, SR)
    assert abs(energy_onset_sec(audio) - 0.2) < 0.002


def test_virtual_kits_draw_from_the_other_given_kits() -> None:
    kits = synth.load_kits(["synth:1", "synth:2", "virtual:5"])
    assert [k.name for k in kits] == ["synth:1", "synth:2", "virtual:5"]
    donors = {id(d) for d in kits[2]._donor_of.values()}
    assert donors <= {id(kits[0]), id(kits[1])}
    with pytest.raises(ConfigError, match="other kits"):
        synth.load_kits(["virtual:1"])


@needs_fluidsynth
def test_soundfont_drum_kit_alignment_and_velocity() -> None:
    name = INSTALLED_FONTS[0].stem
    kit = synth.load_kit(f"sf:{name}:0")
    assert kit.name == f"sf:{name}:0"
    for pitch in (36, 38, 42, 49):
        soft = kit.render([Note(0.25, pitch, 30)], 1.5, SR)
        loud = kit.render([Note(0.25, pitch, 120)], 1.5, SR)
        assert abs(energy_onset_sec(loud) - 0.25) < 0.002, pitch
        assert np.abs(loud).max() > np.abs(soft).max(), pitch


def _soundfont_has_a_piano(path: Path) -> bool:
    return soundfont.SoundfontSynth(path, 24_000).has_preset(0, 0)


@needs_fluidsynth
def test_a_worker_forked_after_torch_ran_on_threads_loads_a_soundfont() -> None:
    """FluidSynth loads samples in OpenMP regions, through the libgomp torch loaded; a
    worker forked after torch ran on several threads inherited that library's pool
    without its threads and hung in sfload forever (preprocess after transcribe).
    The preprocess workers' initializer runs OpenMP on one thread."""
    import multiprocessing
    import os

    import torch

    from drumtx.recording_part import init_worker

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.randn(256, 256) @ torch.randn(256, 256)  # starts the OpenMP pool
        context = multiprocessing.get_context("fork")
        with context.Pool(1, initializer=init_worker, initargs=(os.getpid(),)) as pool:
            loaded = pool.apply_async(
                _soundfont_has_a_piano, (INSTALLED_FONTS[0],)
            ).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    assert loaded


# --- reserved SoundFonts ---------------------------------------------------------


def fake_soundfont(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00sfbk")  # never loaded: refused first
    return path


@pytest.mark.parametrize(
    "name",
    ["FluidR3_GM.sf2", "FluidR3_GS.sf2", "FluidR3Mono_GM.sf3", "MuseScore_General.sf3",
     "musescore-general-lossless.sf2", "AVL_Drumkits_Red_Zeppelin.sf2"],
)  # fmt: skip
def test_make_dataset_refuses_reserved_soundfonts(tmp_path: Path, name: str) -> None:
    font = fake_soundfont(tmp_path / "fonts" / name)
    with pytest.raises(ConfigError, match="reserved for independent evaluation"):
        make_dataset(tmp_path / "out", midi_dir=None, kits=[f"sf:{font}"], limit=1,
                     seed=0, max_sec=2.0)  # fmt: skip
    assert not (tmp_path / "out").exists()  # refused before any file is written


def test_reserved_soundfonts_are_refused_whatever_their_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A link with an innocent name, to a reserved file, is reserved.
    target = fake_soundfont(tmp_path / "fluid" / "FluidR3_GM.sf2")
    link = tmp_path / "bank.sf2"
    link.symlink_to(target)
    assert soundfont.is_reserved(link)
    # A file that a reserved Debian package installed is reserved, however it is named.
    packaged = fake_soundfont(tmp_path / "usr" / "share" / "sounds" / "plain.sf2")
    info = tmp_path / "dpkg"
    info.mkdir()
    (info / "musescore-general-soundfont-small.list").write_text(f"/usr\n{packaged}\n")
    monkeypatch.setattr(soundfont, "DPKG_INFO", info)
    soundfont._reserved_package_files.cache_clear()
    try:
        assert soundfont.is_reserved(packaged)
        assert soundfont.list_soundfonts([packaged.parent]) == []
        with pytest.raises(ConfigError, match="reserved"):
            synth.load_kit(f"sf:{packaged}")
        ok = fake_soundfont(tmp_path / "other" / "TimGM6mb.sf2")
        assert not soundfont.is_reserved(ok)
    finally:
        soundfont._reserved_package_files.cache_clear()


def test_backing_refuses_reserved_soundfonts(tmp_path: Path) -> None:
    from drumtx.synth.backing import BackingSpec

    font = fake_soundfont(tmp_path / "FluidR3_GM.sf2")
    with pytest.raises(ConfigError, match="reserved"):
        BackingSpec.from_settings(str(font), "", 0.0, 0)
