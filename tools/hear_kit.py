"""How a model hears each drum of a kit: one voice at a time, over a quiet groove.

For every kit and voice, HITS hits of the voice (velocity 100, one a second) over a
closed hi-hat half-way between two hits and a kick before each; prints how often each
class fired within 50 ms of the hits (at the model's thresholds, as transcribe decodes)
and the mean peak probability of the voice's own class there. ``--cut-highs`` plays each
kit a second time with the probed hits' highs (above 2 kHz) removed after their first
15 ms: what the tail's hiss adds (a recorded tom's snare buzz; a cymbal's wash).
``--bare`` plays each voice a second time alone, without the groove between the hits:
what the model expects from the groove rather than hears (after a hi-hat half a beat
before, a recorded snare fires the hi-hat far more often than alone). ``--velocities``
plays the probed hits at each of those velocities instead of 100 (the groove stays as
it is) and prints how loud the kit plays the voice there against velocity 127
(``level_db``): where a kit's ghost notes stop being heard, and whether that is the
model or the kit's own velocity response. ``--retune`` plays the probed hits retuned
by each of those semitones, by playback speed as the renders' tuned toms are
(``--retune-by head`` plays what rings faster or slower and keeps the stick's click as
recorded, as a tighter head sounds): whether a tom is heard as a snare for its pitch
(a recorded kit's high tom tuned 4 semitones down is heard as a tom). The JSON rows
also hold each class's mean peak probability at the hits (``peak_probs``).

Usage: python tools/hear_kit.py --kits sfz:/work/kits/SamsSonor/SamsSonor.sfz GMRockKit
           [--checkpoint drumtx/models/default.pt] [--voices tom_high tom_low snare]
           [--cut-highs] [--bare] [--velocities 20 40 100] [--retune -4 0 4]
           [--retune-by head|speed] [--hits 8]
           [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import signal

from drumtx.checkpoint import SHIPPED_MODELS_DIR
from drumtx.cli import print_error
from drumtx.config import load_config
from drumtx.errors import DrumtxError
from drumtx.inference import (
    LoadedModel,
    array_activations,
    class_thresholds,
    decode_hits,
    load_model,
    resolve_device,
)
from drumtx.midi import Note
from drumtx.synth.dsp import Sound
from drumtx.synth.kit import Kit
from drumtx.synth.load import load_kit
from drumtx.synth.studio import retune, retuned

CLICK_SEC = 0.005  # how long a stick's click on a head lasts, for --retune-by head
SAMPLE_RATE = 24_000  # a strike's level is measured at it; the model hears its own
PITCH_OF_VOICE = {  # the note each probed voice is played with (TD-17 numbers)
    "kick": 36, "snare": 38, "hh_closed": 42, "hh_open": 46, "tom_high": 48,
    "tom_mid": 45, "tom_low": 43, "crash1": 49, "ride": 51,
}  # fmt: skip
CONTEXT_HAT, CONTEXT_KICK = 42, 36  # the groove under the probed hits
TOLERANCE_SEC = 0.05  # a class "fired" at a hit within this much of it
CUT_HZ, CUT_AFTER_SEC, CUT_FADE_SEC = 2000.0, 0.015, 0.005
LEVEL_WINDOW_SEC = 0.01  # a hit's level: its loudest RMS over windows this long
LEVEL_DRAWS = 8  # strikes averaged per velocity (round robins, per-hit spread)


def probe_notes(
    pitch: int, hits: int, groove: bool = True, velocity: int = 100
) -> tuple[list[Note], list[float], float]:
    """(notes, times of the probed hits, duration): a hit a second at ``velocity``
    and, with ``groove``, a closed hi-hat half-way between two hits and a kick 0.25 s
    before each."""
    notes, times = [], []
    for k in range(hits):
        t = 1.0 + k
        times.append(t)
        notes.append(Note(t, pitch, velocity))
        if groove:
            notes += [Note(t - 0.5, CONTEXT_HAT, 60), Note(t - 0.25, CONTEXT_KICK, 90)]
    return notes, times, hits + 1.5


def cut_highs(sound: Sound, sample_rate: int) -> Sound:
    """The sound with its highs faded out after its first CUT_AFTER_SEC."""
    sos = signal.butter(4, CUT_HZ, "lowpass", fs=sample_rate, output="sos")
    audio = sound.audio.astype(np.float64)
    low = signal.sosfiltfilt(sos, audio) if audio.size > 27 else audio
    start = sound.onset + round(CUT_AFTER_SEC * sample_rate)
    fade = np.clip((np.arange(audio.size) - start) / (CUT_FADE_SEC * sample_rate), 0, 1)
    return Sound(((1 - fade) * audio + fade * low).astype(np.float32), sound.onset)


def with_voice_changed(
    kit: Kit, voice: str, change: Callable[[Sound, int], Sound]
) -> Kit:
    """``kit`` with ``change(sound, sample_rate)`` applied to ``voice``'s hits (its own
    render still runs: an SFZ kit draws its microphone balance there)."""
    strike = kit.strike

    def changed(v: str, velocity: float, sample_rate: int, rng: np.random.Generator):
        hit = strike(v, velocity, sample_rate, rng)
        if v != voice:
            return hit
        return replace(hit, sound=change(hit.sound, sample_rate))

    kit.strike = changed  # type: ignore[method-assign]
    return kit


def head_retuned(sound: Sound, semitones: float, sample_rate: int) -> Sound:
    """``sound`` with its drum head tuned ``semitones`` higher or lower: what rings
    from the onset on is played faster or slower, but the stick's click stays as
    recorded, the recording fading into the retuned ring over ``CLICK_SEC``; whatever
    precedes the onset is kept, so the onset stays where it was. (Renders tune by
    playback speed: toms tuned this way trained no better, docs/model-history.md,
    *High toms on the soup's recipe*.)"""
    if abs(semitones) < 0.05:
        return sound
    before, after = sound.audio[: sound.onset], sound.audio[sound.onset :]
    ring = retune(after, semitones)  # a new array: np.interp's
    n = min(round(CLICK_SEC * sample_rate), ring.size, after.size)
    fade = (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
    ring[:n] = fade * after[:n] + (1 - fade) * ring[:n]
    return Sound(np.concatenate([before, ring]), sound.onset)


RETUNERS: dict[str, Callable[[float], Callable[[Sound, int], Sound]]] = {
    "head": lambda st: lambda sound, rate: head_retuned(sound, st, rate),
    "speed": lambda st: lambda sound, _: retuned(sound, st),
}


def with_highs_cut(kit: Kit, voice: str) -> Kit:
    """``kit`` with ``voice``'s hits cut by ``cut_highs``."""
    return with_voice_changed(kit, voice, cut_highs)


def strike_level_db(kit: Kit, voice: str, velocity: int) -> float:
    """How loud the kit plays ``voice`` at ``velocity`` (dBFS of the loudest
    LEVEL_WINDOW_SEC RMS of the strike's sound at its gain; mean power of LEVEL_DRAWS
    strikes from a fixed generator)."""
    rng = np.random.default_rng(0)
    window = round(LEVEL_WINDOW_SEC * SAMPLE_RATE)
    powers = []
    for _ in range(LEVEL_DRAWS):
        hit = kit.strike(voice, min(max(velocity, 1), 127) / 127, SAMPLE_RATE, rng)
        audio = hit.sound.audio.astype(np.float64) * hit.gain
        if audio.size < window:
            audio = np.pad(audio, (0, window - audio.size))
        power = np.convolve(audio**2, np.ones(window) / window, mode="valid")
        powers.append(power.max())
    return float(10 * np.log10(max(np.mean(powers), 1e-20)))


def hear(
    loaded: LoadedModel,
    kit: Kit,
    voice: str,
    hits: int,
    groove: bool = True,
    velocity: int = 100,
) -> dict:
    """How often each class fired at ``voice``'s hits, and each class's mean peak
    probability there."""
    pitch = PITCH_OF_VOICE[voice]
    own = loaded.vocab.class_of_pitch(pitch)
    notes, times, duration = probe_notes(pitch, hits, groove, velocity)
    # Rendered at the model's rate: a 48 kHz model fed 24 kHz audio hears it an
    # octave up and twice as fast.
    audio = kit.render(notes, duration, loaded.cfg.audio.sample_rate, seed=1)
    onset, heard_velocity = array_activations(loaded, audio)
    found = decode_hits(loaded, onset, heard_velocity, class_thresholds(loaded))
    fired = np.zeros(loaded.vocab.n_classes)
    peaks = []
    fps = loaded.cfg.frontend.fps
    for t in times:
        near = {h.cls for h in found if abs(h.time_sec - t) <= TOLERANCE_SEC}
        fired[list(near)] += 1
        frames = slice(max(0, round((t - TOLERANCE_SEC) * fps)),
                       round((t + TOLERANCE_SEC) * fps) + 1)  # fmt: skip
        peaks.append(onset[frames].max(axis=0))
    codes = loaded.vocab.codes
    peak = np.mean(peaks, axis=0)
    return {
        "class": None if own is None else codes[own],
        "hits": hits,
        "fired": {codes[c]: float(fired[c] / hits) for c in np.flatnonzero(fired)},
        "own_peak_prob": None if own is None else float(peak[own]),
        "peak_probs": {code: round(float(p), 4) for code, p in zip(codes, peak)},
    }


def run(args: argparse.Namespace) -> list[dict]:
    cfg = load_config(args.config) if args.config else load_config()
    loaded = load_model(args.checkpoint, cfg, resolve_device("cpu"))
    rows = []
    for spec in args.kits:
        voices = [v for v in args.voices if v in load_kit(spec).voices]
        for voice in voices:
            full_db = strike_level_db(load_kit(spec), voice, 127)
            for velocity in args.velocities:
                level_db = strike_level_db(load_kit(spec), voice, velocity) - full_db
                plays = itertools.product(
                    args.retune,
                    (False, True) if args.cut_highs else (False,),
                    (True, False) if args.bare else (True,),
                )
                for semitones, cut, groove in plays:
                    kit = load_kit(spec)  # fresh: round robins, caches, strike
                    if semitones:
                        tuner = RETUNERS[args.retune_by](semitones)
                        kit = with_voice_changed(kit, voice, tuner)
                    if cut:
                        kit = with_highs_cut(kit, voice)
                    row = hear(loaded, kit, voice, args.hits, groove, velocity)
                    rows.append({"kit": spec, "voice": voice, "velocity": velocity,
                                 "level_db": round(level_db, 2),
                                 "semitones": semitones,
                                 "retune_by": args.retune_by, "highs_cut": cut,
                                 "groove": groove, **row})  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'kit':<32} {'voice':<10} {'vel':>3} {'dB':>6} {'played':<16} "
          f"{'class':>5} {'found':>6} {'p(own)':>7}  "
          "also fired (share of hits)")  # fmt: skip
    for r in rows:
        own = r["class"] or "-"
        found = r["fired"].get(own, 0.0)
        others = ", ".join(f"{c} {s:.2f}" for c, s in
                           sorted(r["fired"].items(), key=lambda kv: -kv[1])
                           if c != own)  # fmt: skip
        prob = "-" if r["own_peak_prob"] is None else f"{r['own_peak_prob']:.2f}"
        played = f"{r['semitones']:+g} st, " if r["semitones"] else ""
        played += "highs cut" if r["highs_cut"] else "as is"
        played += "" if r["groove"] else ", bare"
        print(f"{r['kit'][-32:]:<32} {r['voice']:<10} {r['velocity']:>3} "
              f"{r['level_db']:>6.1f} {played:<16} {own:>5} {found:>6.2f} {prob:>7}  "
              f"{others or '-'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", nargs="+", required=True, metavar="SPEC",
                        help="kits as make-dataset takes them (sfz:PATH, sf:NAME, "
                        "a Hydrogen kit, synth:SEED)")  # fmt: skip
    parser.add_argument("--checkpoint", type=Path,
                        default=SHIPPED_MODELS_DIR / "default.pt")  # fmt: skip
    parser.add_argument("--voices", nargs="+", default=list(PITCH_OF_VOICE),
                        choices=list(PITCH_OF_VOICE))  # fmt: skip
    parser.add_argument("--hits", type=int, default=8, help="hits per voice")
    parser.add_argument("--cut-highs", action="store_true",
                        help="also play each voice with its highs cut after 15 ms")
    parser.add_argument("--bare", action="store_true",
                        help="also play each voice alone, without the groove between "
                        "its hits")  # fmt: skip
    parser.add_argument("--velocities", nargs="+", type=int, default=[100],
                        metavar="V", help="velocities (1-127) the probed hits are "
                        "played at, one pass each (default: 100)")  # fmt: skip
    parser.add_argument("--retune", nargs="+", type=float, default=[0.0],
                        metavar="SEMITONES", help="play the probed hits retuned "
                        "by each of these semitones, one pass each (default: "
                        "0)")  # fmt: skip
    parser.add_argument("--retune-by", choices=sorted(RETUNERS), default="speed",
                        help="speed: the whole hit played faster or slower (as the "
                        "renders tune toms); head: what rings retuned, the stick's "
                        "click as recorded (default: speed)")  # fmt: skip
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows")
    args = parser.parse_args(argv)
    if args.hits < 1:
        parser.error("--hits must be at least 1")
    if not all(1 <= v <= 127 for v in args.velocities):
        parser.error("--velocities must be 1..127 (MIDI velocities)")
    if not all(abs(st) <= 24 for st in args.retune):
        parser.error("--retune must be -24..24 semitones")
    try:
        rows = run(args)
    except DrumtxError as exc:
        print_error(exc)
        return 1
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
