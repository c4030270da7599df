"""Hydrogen drumkits: read a ``drumkit.xml``, map its instruments to voices, play them.

Hydrogen's kits name their instruments freely ('Kick (Tama Superstar 22")', 'tomhi2',
'VariBreaks Hat 1 Pd'); ``classify_instrument`` reads a drum role from the name and
``map_instruments`` gives every voice the best instrument for it, rims and edges falling
back to their drum. ``HydrogenKit`` plays the mapped samples, velocity layers included.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from drumtx.errors import AudioError, ConfigError
from drumtx.synth.dsp import Sound, anchor_sound
from drumtx.synth.kit import SYNTH_VERSION, Kit, Strike, hat_choke

HYDROGEN_ROOT = Path("/usr/share/hydrogen/data/drumkits")  # Debian's hydrogen-drumkits

# Instrument names containing these words are percussion we do not model, or playing
# techniques (rolls, chokes, swishes) whose sound would mislabel a plain hit.
_SKIP_WORDS = frozenset(
    {
        "clap", "cowbell", "tamb", "tambourine", "agogo", "conga", "bongo", "whistle",
        "shaker", "maraca", "zap", "fx", "djembe", "cajon", "clave", "woodblock",
        "wood",
        "snap", "snaps", "waterglass", "roll", "choke", "swish", "flink", "free",
        "sangban", "dununba", "kenkeni", "perc",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _Layer:
    path: Path
    min_vel: float  # 0..1
    max_vel: float
    gain: float


@dataclass(frozen=True)
class _Instrument:
    name: str
    gain: float  # instrument volume * gain
    mute_group: int  # -1: none
    layers: tuple[_Layer, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop the XML namespace


def _child_text(elem: ET.Element, name: str, default: str = "") -> str:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return default


def _float(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def _parse_instrument(elem: ET.Element, folder: Path) -> _Instrument | None:
    """One <instrument>: its layers (direct or under <instrumentComponent>) or, in old
    kits, one filename; None when muted or without a sample file."""
    layers = []
    for layer in elem.iter():
        if _local(layer.tag) != "layer" or not _child_text(layer, "filename"):
            continue
        layers.append(_Layer(
            folder / _child_text(layer, "filename"),
            _float(_child_text(layer, "min", "0"), 0.0),
            _float(_child_text(layer, "max", "1"), 1.0),
            _float(_child_text(layer, "gain", "1"), 1.0),
        ))  # fmt: skip
    if not layers and _child_text(elem, "filename"):  # pre-0.9.4 kits: one sample
        layers.append(_Layer(folder / _child_text(elem, "filename"), 0.0, 1.0, 1.0))
    layers = [la for la in layers if la.path.is_file()]
    if not layers or _child_text(elem, "isMuted") == "true":
        return None
    gain = _float(_child_text(elem, "volume", "1"), 1.0)
    gain *= _float(_child_text(elem, "gain", "1"), 1.0)
    mute = int(_float(_child_text(elem, "muteGroup", "-1"), -1))
    return _Instrument(_child_text(elem, "name"), gain, mute, tuple(layers))


def parse_drumkit(folder: Path) -> tuple[str, list[_Instrument]]:
    """The kit name and the playable instruments of a Hydrogen drumkit folder."""
    xml_path = folder / "drumkit.xml"
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(
            f"cannot read Hydrogen drumkit {xml_path}: {exc}",
            hint="a drumkit folder holds drumkit.xml and its samples",
        ) from None
    instruments = [
        inst
        for elem in root.iter()
        if _local(elem.tag) == "instrument"
        and (inst := _parse_instrument(elem, folder)) is not None
    ]
    return _child_text(root, "name") or folder.name, instruments


def _words(name: str) -> list[str]:
    """Lower-case words and numbers of a name: 'Hi-Hat Closed (Paiste 14")' ->
    ['hi', 'hat', 'closed'], 'BassDrum' -> ['bass', 'drum'], 'HHOpen' -> ['hh',
    'open'], 'Snare1' -> ['snare', '1']."""
    name = re.sub(r"\([^)]*\)", " ", name)  # sizes and makers, e.g. 'edge 14"'
    name = re.sub(
        r"^\s*[a-gA-G]#?\d+\s*-\s*", "", name
    )  # 'c#3 - stick' (GM note names)
    name = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).lower()
    return re.findall(r"[a-z]+|\d+", name)


def _hat_role(w: set[str]) -> str:
    if w & {"pedal", "pd", "foot"}:
        return "hh_pedal"
    if w & {"semi", "half"}:
        return "hh_semi"
    if w & {"open", "opened", "op", "ohh"}:
        return "hh_open"
    if w & {"closed", "close", "cl", "chh"}:
        return "hh_closed"
    return "hh_other"


def _tom_role(w: set[str], joined: str) -> str:
    if w & {"floor", "low", "lo"} or joined.startswith("tomlo"):
        return "tom_low"
    if w & {"mid", "middle", "med"}:
        return "tom_mid"
    if w & {"hi", "high"} or joined.startswith("tomhi"):
        return "tom_high"
    return "tom"


def classify_instrument(name: str) -> str | None:
    """The drum role an instrument name suggests, or None for percussion we skip."""
    words = _words(name)
    w, joined = set(words), "".join(words)
    if not words or w & _SKIP_WORDS:
        return None
    if w & {"kick", "bd"} or "bassdrum" in joined:
        return "kick"
    if w & {"hh", "hat", "hihat", "ohh", "chh"}:
        return _hat_role(w)
    if "tom" in w or joined.startswith("tom"):
        return _tom_role(w, joined)
    if w & {"bell", "cup"}:  # 'Ride Bell', 'ride-cup', 'Paiste Bell' (cowbells skipped)
        return "ride_bell"
    if "ride" in w:
        return "crash_ride" if "crash" in w else "ride"
    if w & {"crash", "china", "splash", "cymbal"}:
        return "crash"
    if w & {"stick", "sidestick"} or {"rim", "click"} <= w:
        return "cross_stick"
    if w & {"snare", "sd", "sn"}:
        return "rimshot" if w & {"rim", "rimshot"} else "snare"
    return None


# voice -> instrument roles to try, best first (rims and edges fall back to the drum)
ROLE_FALLBACKS: dict[str, tuple[str, ...]] = {
    "kick": ("kick",),
    "snare": ("snare",),
    "cross_stick": ("cross_stick", "snare"),
    "rimshot": ("rimshot", "snare"),
    "hh_closed": ("hh_closed", "hh_other", "hh_pedal"),
    "hh_closed_edge": ("hh_closed", "hh_other", "hh_pedal"),
    "hh_pedal": ("hh_pedal", "hh_closed", "hh_other"),
    "hh_open": ("hh_open", "hh_semi"),
    "hh_open_edge": ("hh_open", "hh_semi"),
    "ride": ("ride", "crash_ride", "ride_bell"),
    "ride_edge": ("ride", "crash_ride", "ride_bell"),
    "ride_bell": ("ride_bell", "ride", "crash_ride"),
}
_CRASH_RANK = {"crash": 0, "cymbal": 1, "splash": 2, "china": 3}


def _rank_crashes(by_role: dict[str, list[_Instrument]]) -> list[_Instrument]:
    """Crash cymbals, plain crashes before splashes and chinas."""

    def rank(inst: _Instrument) -> int:
        return min(
            (r for k, r in _CRASH_RANK.items() if k in _words(inst.name)), default=9
        )

    ranked = sorted(by_role.get("crash", []), key=rank)
    return ranked or by_role.get("crash_ride", [])


def _rank_toms(by_role: dict[str, list[_Instrument]]) -> dict[str, _Instrument]:
    """High, mid and low tom; unnamed toms ('Tom 1', 'Tom 2') fill free slots, high
    first."""
    slots = {
        r: by_role[r][0] for r in ("tom_high", "tom_mid", "tom_low") if by_role.get(r)
    }
    numbered = sorted(
        by_role.get("tom", []),
        key=lambda i: int(next((t for t in _words(i.name) if t.isdigit()), "0")),
    )
    for inst in numbered:
        free = [r for r in ("tom_high", "tom_mid", "tom_low") if r not in slots]
        if free:
            slots[free[0]] = inst
    return slots


def map_instruments(instruments: Sequence[_Instrument]) -> dict[str, _Instrument]:
    """Voice (a VOICE_OF_PITCH value) -> the instrument playing it; absent = silent."""
    by_role: dict[str, list[_Instrument]] = {}
    for inst in instruments:
        role = classify_instrument(inst.name)
        if role is not None:
            by_role.setdefault(role, []).append(inst)
    voices: dict[str, _Instrument] = {}
    for voice, roles in ROLE_FALLBACKS.items():
        found = next((by_role[r][0] for r in roles if by_role.get(r)), None)
        if found is not None:
            voices[voice] = found
    for role, inst in _rank_toms(by_role).items():
        voices[role] = voices[role + "_rim"] = inst
    crashes = _rank_crashes(by_role)
    if crashes:
        voices["crash1"] = voices["crash1_edge"] = crashes[0]
        voices["crash2"] = voices["crash2_edge"] = crashes[min(1, len(crashes) - 1)]
    return voices


def _load_sample(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of a kit sample file at ``sample_rate``."""
    try:
        audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot decode drum sample {path}: {exc}") from None
    mono = np.nan_to_num(audio.mean(axis=1))  # (n,)
    if file_rate != sample_rate:
        g = gcd(int(file_rate), int(sample_rate))
        mono = signal.resample_poly(mono, sample_rate // g, int(file_rate) // g)
    return mono.astype(np.float32)


class HydrogenKit(Kit):
    """A sampled kit read from a Hydrogen drumkit folder (drumkit.xml + samples)."""

    master_gain = 0.5  # headroom: kits' samples are often normalised to full scale
    fade_sec = 0.01

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name
        xml_name, instruments = parse_drumkit(self.folder)
        self.voices = map_instruments(instruments)
        missing = [v for v in ("kick", "snare") if v not in self.voices]
        if missing:
            raise ConfigError(
                f"Hydrogen kit {xml_name!r} ({self.folder}) has no "
                f"{' or '.join(missing)}; "
                f"its instruments: {', '.join(i.name for i in instruments) or 'none'}",
                hint="use a drum kit with a kick and a snare, or synth:SEED",
            )
        digest = hashlib.sha256((self.folder / "drumkit.xml").read_bytes()).hexdigest()
        self.fingerprint = f"hydrogen-v{SYNTH_VERSION}:{self.name}:{digest[:16]}"
        self._sounds: dict[tuple[Path, int], Sound] = {}

    def _sound(self, path: Path, sample_rate: int) -> Sound:
        key = (path, sample_rate)
        if key not in self._sounds:
            audio = _load_sample(path, sample_rate)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            snd = anchor_sound(audio, sample_rate)  # normalised: keep the level apart
            self._sounds[key] = Sound(snd.audio * peak, snd.onset)
        return self._sounds[key]

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        """The instrument's layer for ``velocity``; hi-hats choke as hi-hats, other
        instruments honour the kit's mute groups."""
        inst = self.voices[voice]
        layer = _pick_layer(inst, velocity, rng)
        gain = self.master_gain * inst.gain * layer.gain * velocity
        group, chokes = hat_choke(voice)
        if group is None and inst.mute_group >= 0:
            group, chokes = f"mute{inst.mute_group}", True
        snd = self._sound(layer.path, sample_rate)
        return Strike(snd, gain, inst.name, group, chokes)


def _pick_layer(inst: _Instrument, vel: float, rng: np.random.Generator) -> _Layer:
    """A layer whose velocity range holds ``vel`` (random among several), else the
    nearest one."""
    inside = [la for la in inst.layers if la.min_vel <= vel <= la.max_vel]
    if inside:
        return inside[int(rng.integers(len(inside)))]
    dist = [max(la.min_vel - vel, vel - la.max_vel) for la in inst.layers]
    return inst.layers[int(np.argmin(dist))]


def list_hydrogen_kits(root: Path = HYDROGEN_ROOT) -> list[Path]:
    """Drumkit folders (holding drumkit.xml) under ``root``, sorted; [] when absent."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "drumkit.xml").is_file())
