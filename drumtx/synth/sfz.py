"""SFZ drum kits: parse the text format, map its keys to voices, play it with its mics.

Parsing runs in three steps: ``expand_sfz`` strips comments, follows ``#include`` and
substitutes ``#define`` variables; ``split_headers`` cuts the text into headers and
opcodes; ``build_regions`` applies <control>/<global>/<master>/<group> inheritance
and keeps the regions a plain note-on plays (no release triggers, CC-triggered or
CC-gated-off regions, keyswitches or silences). A silent region (``*silence``) of a
group is kept apart as a ``Silence``: it sounds nothing, but its note-on chokes what
that group turns off (``off_by``), as kits close the hi-hat.

``SfzKit`` is a ``Kit``: a kit is one .sfz file, or a folder whose .sfz files are the
microphones of one recorded kit (DrumGizmo's per-channel layout: every file maps every
drum, bleed included). A hit plays every region of its key that matches the velocity,
the shared random number and each region's round-robin counter, in every microphone
file, as an SFZ player would; the microphones are summed at a close/overhead/room
balance drawn per render. Keys map to voices by the kit's own labels (master, group
and region labels, e.g. 'HihatOpen', 'Tom High'), and by General MIDI numbers where a
key has no telling label.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from scipy import signal

from drumtx.errors import AudioError, ConfigError
from drumtx.synth.dsp import Sound, anchor_sound
from drumtx.synth.hydrogen import ROLE_FALLBACKS, classify_instrument
from drumtx.synth.kit import SYNTH_VERSION, Kit, Strike, hat_choke, note_rng
from drumtx.synth.soundfont import GM_DRUM_NOTE, check_not_reserved_kit

if TYPE_CHECKING:
    from drumtx.midi import Note
    from drumtx.synth.buzz import SnareBuzz

SFZ_HINT = "an SFZ kit is a .sfz file, or a folder of .sfz files (one per microphone)"
MAX_INCLUDE_DEPTH = 32
_DIRECTIVE = re.compile(r'#define\s+(\$\w+)\s+(\S+)|#include\s+"([^"]+)"')
_VARIABLE = re.compile(r"\$\w+")
_HEADER = re.compile(r"<(\w+)>")
_OPCODE = re.compile(r"(?:^|(?<=\s))(\w+)=")
_NOTE_NAME = re.compile(r"([a-gA-G])([#b]?)(-?\d+)$")
_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_TEXT_OPCODES = frozenset(
    {"sample", "default_path", "master_label", "group_label", "region_label"}
)


# ---------------------------------------------------------------- text -> opcodes


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(
            f"cannot read SFZ file {path}: {exc}", hint=SFZ_HINT
        ) from None


def strip_comments(text: str) -> str:
    """SFZ text without its /* block */ and // line comments."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


def _substitute(text: str, defines: Mapping[str, str]) -> str:
    """``$name`` -> its #define; the longest defined prefix wins for run-on names."""

    def replace(m: re.Match) -> str:
        name = m.group(0)
        for end in range(len(name), 1, -1):
            if name[:end] in defines:
                return defines[name[:end]] + name[end:]
        return name

    return _VARIABLE.sub(replace, text)


def expand_sfz(
    path: Path,
    root_dir: Path | None = None,
    defines: dict[str, str] | None = None,
    depth: int = 0,
) -> str:
    """The SFZ text of ``path`` with comments gone, includes inlined (relative to the
    top file's folder, as SFZ players resolve them) and variables substituted."""
    path = Path(path)
    root_dir = path.parent if root_dir is None else root_dir
    defines = {} if defines is None else defines
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfigError(
            f"SFZ includes nest deeper than {MAX_INCLUDE_DEPTH} at {path}",
            hint="an #include probably includes itself",
        )
    text = strip_comments(_read_text(path))
    parts, pos = [], 0
    for m in _DIRECTIVE.finditer(text):
        parts.append(_substitute(text[pos : m.start()], defines))
        pos = m.end()
        if m.group(1):
            defines[m.group(1)] = _substitute(m.group(2), defines)
            continue
        name = _substitute(m.group(3), defines).replace("\\", "/")
        included = root_dir / name
        if not included.is_file() and (path.parent / name).is_file():
            included = path.parent / name
        if not included.is_file():
            raise ConfigError(f'{path}: #include "{name}" not found (looked in '
                              f"{root_dir})", hint=SFZ_HINT)  # fmt: skip
        parts.append(expand_sfz(included, root_dir, defines, depth + 1))
    parts.append(_substitute(text[pos:], defines))
    return "\n".join(parts)


def opcodes(body: str) -> dict[str, str]:
    """``name=value`` pairs; a text value (a sample path, a label) may hold spaces."""
    found = list(_OPCODE.finditer(body))
    ops = {}
    for m, nxt in zip(found, found[1:] + [None]):
        value = body[m.end() : nxt.start() if nxt else len(body)].strip()
        name = m.group(1)
        ops[name] = value if name in _TEXT_OPCODES else (value.split() or [""])[0]
    return ops


def split_headers(text: str) -> list[tuple[str, dict[str, str]]]:
    """(header, opcodes) in file order; opcodes before the first header are dropped."""
    pieces = _HEADER.split(text)  # [before, name, body, name, body, ...]
    return [
        (pieces[i].lower(), opcodes(pieces[i + 1])) for i in range(1, len(pieces), 2)
    ]


# ---------------------------------------------------------------- opcodes -> regions


def parse_key(text: str) -> int:
    """A MIDI key from a number or a note name (c4 = 60, c#4 = 61, db4 = 61)."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = _NOTE_NAME.match(text)
    if not m:
        raise ValueError(f"not a key: {text!r}")
    shift = {"#": 1, "b": -1}.get(m.group(2), 0)
    return (int(m.group(3)) + 1) * 12 + _PITCH_CLASS[m.group(1).lower()] + shift


@dataclass(frozen=True)
class Region:
    """One playable SFZ region, every inherited opcode resolved."""

    sample: Path
    lokey: int
    hikey: int
    lovel: int
    hivel: int
    lorand: float
    hirand: float
    seq_length: int
    seq_position: int  # 1-based
    group: int
    off_by: int | None
    gain: float  # linear: volume (dB, every level) and amplitude (%)
    pan: float  # -1 (left) .. 1 (right)
    tune_cents: float  # tune + transpose, before key tracking
    keycenter: int
    keytrack_cents: float  # per key away from keycenter
    offset: int  # samples into the file
    end: int | None  # last sample played, inclusive
    velcurve: tuple[tuple[int, float], ...]  # amp_velcurve_N points
    veltrack: float  # amp_veltrack / 100
    label: str  # region, group and master labels (most specific first), "|"-joined


@dataclass(frozen=True)
class Silence:
    """A silent region of a group: a note-on in its ranges chokes that group's
    ``off_by`` victims (SFZ kits close their hi-hats with these)."""

    lokey: int
    hikey: int
    lovel: int
    hivel: int
    group: int

    def plays(self, key: int, velocity: int) -> bool:
        return self.lokey <= key <= self.hikey and self.lovel <= velocity <= self.hivel


def _num(ops: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(ops[name]) if name in ops else default
    except ValueError:
        return default


def _cc_defaults(control: Mapping[str, str]) -> dict[int, float]:
    """Each controller's value before any MIDI arrives (set_ccN, set_hdccN)."""
    values: dict[int, float] = {}
    for name in control:
        m = re.fullmatch(r"set_(hd)?cc(\d+)", name)
        if m:
            scale = 127.0 if m.group(1) else 1.0
            values[int(m.group(2))] = _num(control, name, 0.0) * scale
    return values


def _plays_on_note(ops: Mapping[str, str], cc: Mapping[int, float]) -> bool:
    """Whether a plain note-on at the controllers' defaults starts this region."""
    if ops.get("trigger", "attack").lower().startswith("release"):
        return False
    if any(re.fullmatch(r"on_(lo|hi)cc\d+", k) for k in ops):
        return False  # started by a controller, not a note
    if _num(ops, "lopolyaft", 0) > 0 or _num(ops, "lochanaft", 0) > 0:
        return False
    if "sw_last" in ops and ops.get("sw_default") != ops["sw_last"]:
        return False
    for name in ops:
        m = re.fullmatch(r"(lo|hi)cc(\d+)", name)
        if m:
            value = cc.get(int(m.group(2)), 0.0)
            bound = _num(ops, name, 0 if m.group(1) == "lo" else 127)
            if (m.group(1) == "lo" and value < bound) or (
                m.group(1) == "hi" and value > bound
            ):
                return False
    return True


def _level(ops: Mapping[str, str]) -> float:
    """Linear gain from every level's volume (dB) and amplitude (%)."""
    db = sum(_num(ops, f"{p}volume", 0.0) for p in ("", "group_", "master_", "global_"))
    amp = 1.0
    for p in ("", "group_", "master_", "global_"):
        amp *= _num(ops, f"{p}amplitude", 100.0) / 100
    return float(10 ** (db / 20) * amp)


def _offset(ops: Mapping[str, str], cc: Mapping[int, float]) -> int:
    """offset plus offset_onccN at the controllers' default values."""
    total = _num(ops, "offset", 0.0)
    for name in ops:
        m = re.fullmatch(r"offset_oncc(\d+)", name)
        if m:
            total += _num(ops, name, 0.0) * cc.get(int(m.group(1)), 0.0) / 127
    return max(0, int(round(total)))


def _keys(ops: Mapping[str, str]) -> tuple[int, int, int]:
    """(lokey, hikey, pitch_keycenter); ``key`` sets all three."""
    try:
        if "key" in ops:
            key = parse_key(ops["key"])
            lo = hi = key
        else:
            lo = parse_key(ops.get("lokey", "0"))
            hi = parse_key(ops.get("hikey", "127"))
            key = 60
        center = parse_key(ops["pitch_keycenter"]) if "pitch_keycenter" in ops else key
    except ValueError as exc:
        raise ConfigError(f"bad key in SFZ region: {exc}", hint=SFZ_HINT) from None
    return lo, hi, center


def _region(
    ops: Mapping[str, str], sample_dir: Path, cc: Mapping[int, float]
) -> Region | None:
    """The region ``ops`` describe, or None when a plain note-on never sounds it."""
    sample = ops.get("sample", "").replace("\\", "/")
    if not sample or sample.startswith("*") or not _plays_on_note(ops, cc):
        return None
    lo, hi, center = _keys(ops)
    if lo < 0 or hi < lo:
        return None
    curve = tuple(sorted(
        (int(m.group(1)), _num(ops, k, 1.0))
        for k in ops if (m := re.fullmatch(r"amp_velcurve_(\d+)", k))
    ))  # fmt: skip
    off_by = int(_num(ops, "off_by", -1))
    labels = (ops.get(k, "") for k in ("region_label", "group_label", "master_label"))
    return Region(
        sample=sample_dir / (ops.get("default_path", "").replace("\\", "/") + sample),
        lokey=lo, hikey=hi,
        lovel=int(_num(ops, "lovel", 0)), hivel=int(_num(ops, "hivel", 127)),
        lorand=_num(ops, "lorand", 0.0), hirand=_num(ops, "hirand", 1.0),
        seq_length=max(1, int(_num(ops, "seq_length", 1))),
        seq_position=max(1, int(_num(ops, "seq_position", 1))),
        group=int(_num(ops, "group", 0)), off_by=off_by if off_by > 0 else None,
        gain=_level(ops), pan=float(np.clip(_num(ops, "pan", 0) / 100, -1, 1)),
        tune_cents=_num(ops, "tune", 0) + 100 * _num(ops, "transpose", 0),
        keycenter=center, keytrack_cents=_num(ops, "pitch_keytrack", 100),
        offset=_offset(ops, cc),
        end=int(_num(ops, "end", 0)) if "end" in ops else None,
        velcurve=curve, veltrack=_num(ops, "amp_veltrack", 100) / 100,
        label="|".join(t for t in labels if re.search("[A-Za-z]", t)),
    )  # fmt: skip


def _silence(ops: Mapping[str, str], cc: Mapping[int, float]) -> Silence | None:
    """The choke trigger a silent region of a group is, else None."""
    sample = ops.get("sample", "")
    group = int(_num(ops, "group", 0))
    if not sample.startswith("*") or group <= 0 or not _plays_on_note(ops, cc):
        return None
    lo, hi, _ = _keys(ops)
    return Silence(lo, hi, int(_num(ops, "lovel", 0)), int(_num(ops, "hivel", 127)),
                   group)  # fmt: skip


def _merged_regions(
    headers: Sequence[tuple[str, Mapping[str, str]]],
) -> tuple[list[dict[str, str]], dict[int, float]]:
    """Each <region>'s opcodes with its <global>/<master>/<group> ones, and the
    controllers' defaults."""
    control: dict[str, str] = {}
    levels: dict[str, dict[str, str]] = {"global": {}, "master": {}, "group": {}}
    resets = {"global": ("global", "master", "group"), "master": ("master", "group"),
              "group": ("group",)}  # fmt: skip
    raw = []
    for header, ops in headers:
        if header == "control":
            control.update(ops)
        elif header in resets:
            for level in resets[header]:
                levels[level] = {}
            levels[header] = dict(ops)
        elif header == "region":
            merged = {**levels["global"], **levels["master"], **levels["group"], **ops}
            merged.setdefault("default_path", control.get("default_path", ""))
            raw.append(merged)
    return raw, _cc_defaults(control)


def build_regions(
    headers: Sequence[tuple[str, Mapping[str, str]]], sample_dir: Path
) -> list[Region]:
    """The playable regions, each with its <global>/<master>/<group> opcodes."""
    return build_parts(headers, sample_dir)[0]


def build_parts(
    headers: Sequence[tuple[str, Mapping[str, str]]], sample_dir: Path
) -> tuple[list[Region], list[Silence]]:
    """The playable regions and the silent regions that choke a group on a
    note-on, from one pass over the headers."""
    raw, cc = _merged_regions(headers)
    regions = [r for ops in raw if (r := _region(ops, sample_dir, cc)) is not None]
    return regions, [s for ops in raw if (s := _silence(ops, cc)) is not None]


def _headers(path: Path) -> list[tuple[str, dict[str, str]]]:
    headers = split_headers(expand_sfz(path))
    if not any(h == "region" for h, _ in headers):
        raise ConfigError(
            f"{path} has no <region>: not an SFZ instrument", hint=SFZ_HINT
        )
    return headers


def read_sfz(path: Path) -> list[Region]:
    """Every playable region of an .sfz file (includes and defines resolved)."""
    path = Path(path)
    return build_regions(_headers(path), path.parent)


def read_sfz_chokes(path: Path) -> tuple[list[Region], list[Silence]]:
    """An .sfz file's playable regions and its silent choke triggers."""
    path = Path(path)
    return build_parts(_headers(path), path.parent)


def region_sfz(region: Region, sample_root: Path) -> str:
    """``region`` as one ``<region>`` line that ``read_sfz`` reads back the same, its
    sample named relative to ``sample_root`` (the file's ``default_path`` folder).
    Levels are written as ``volume``; choke groups (group, off_by) are left out, so
    the region plays under the hi-hat rule only, and the label is the most specific."""
    sample = Path(os.path.relpath(region.sample, sample_root)).as_posix()
    ops = [f"sample={sample}", f"lokey={region.lokey}", f"hikey={region.hikey}",
           f"pitch_keycenter={region.keycenter}", f"lovel={region.lovel}",
           f"hivel={region.hivel}", f"lorand={region.lorand:g}",
           f"hirand={region.hirand:g}", f"seq_length={region.seq_length}",
           f"seq_position={region.seq_position}",
           f"volume={20 * np.log10(max(region.gain, 1e-9)):.4f}",
           f"pan={100 * region.pan:g}", f"tune={region.tune_cents:g}",
           f"pitch_keytrack={region.keytrack_cents:g}", f"offset={region.offset}",
           f"amp_veltrack={100 * region.veltrack:g}"]  # fmt: skip
    if region.end is not None:
        ops.append(f"end={region.end}")
    ops += [f"amp_velcurve_{x}={y:g}" for x, y in region.velcurve]
    label = region.label.split("|")[0]
    if label:
        ops.append(f"region_label={label}")  # a text opcode: last, it may hold spaces
    return "<region> " + " ".join(ops)


# ---------------------------------------------------------------- velocity and samples


def velocity_gain(velocity: int, region: Region) -> float:
    """amp_velcurve points (0 at 0 and 1 at 127 unless given), else the SFZ default
    curve (velocity/127)^2, scaled by amp_veltrack."""
    if region.velcurve:
        points = dict(region.velcurve)
        points.setdefault(0, 0.0)
        points.setdefault(127, 1.0)
        xs = sorted(points)
        curve = float(np.interp(velocity, xs, [points[x] for x in xs]))
    else:
        v = velocity if region.veltrack >= 0 else 127 - velocity
        curve = (v / 127) ** 2
    return 1.0 - abs(region.veltrack) * (1.0 - curve)


def _pan_to_mono(audio: np.ndarray, pan: float) -> np.ndarray:
    """(n, channels) -> (n,): a constant-power pan (or balance) into stereo, summed."""
    theta = (pan + 1) * np.pi / 4
    g_left, g_right = np.sqrt(2) * np.cos(theta), np.sqrt(2) * np.sin(theta)
    left, right = audio[:, 0], audio[:, min(1, audio.shape[1] - 1)]
    return (0.5 * (g_left * left + g_right * right)).astype(np.float32)


def _resample(mono: np.ndarray, file_rate: int, sample_rate: int, cents: float):
    """Play ``mono`` at ``cents`` off pitch and convert it to ``sample_rate``."""
    ratio = Fraction(sample_rate) / (
        Fraction(file_rate) * Fraction(2 ** (cents / 1200))
    )
    ratio = ratio.limit_denominator(1000)
    if ratio == 1:
        return mono
    out = signal.resample_poly(mono, ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def render_region(region: Region, key: int, sample_rate: int) -> np.ndarray:
    """The region's sample as a sampler plays it at ``key``: offset, end, pan and
    pitch applied, mono float32 at ``sample_rate`` (gain not applied)."""
    try:
        audio, file_rate = sf.read(region.sample, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot decode SFZ sample {region.sample}: {exc}") from None
    stop = None if region.end is None else region.end + 1
    audio = np.nan_to_num(audio[region.offset : stop])  # (n, channels)
    mono = _pan_to_mono(audio, region.pan) if audio.size else np.zeros(1, np.float32)
    cents = region.tune_cents + (key - region.keycenter) * region.keytrack_cents
    return _resample(mono, int(file_rate), sample_rate, cents)


# ---------------------------------------------------------------- the kit's layout

# General MIDI drum key -> role, for keys whose labels say nothing
_GM_ROLE = {
    35: "kick", 36: "kick", 37: "cross_stick", 38: "snare", 40: "snare",
    42: "hh_closed", 44: "hh_pedal", 46: "hh_open",
    41: "tom_low", 43: "tom_low", 45: "tom_mid", 47: "tom_mid", 48: "tom_high",
    50: "tom_high", 49: "crash", 57: "crash", 55: "crash", 52: "crash",
    51: "ride", 59: "ride", 53: "ride_bell",
}  # fmt: skip
# Labels with these words are a drum played some special way: used only as a fallback.
_ODD_WORDS = frozenset(
    {"off", "click", "clicks", "rest", "mute", "muted", "dead", "brush", "brushes",
     "flam", "roll", "drag", "buzz", "rod", "rods", "mallet", "mallets", "swirl"}
)  # fmt: skip
_CYMBAL_RANK = {"china": 3, "splash": 2, "cymbal": 1}
_TOMS = ("tom_high", "tom_mid", "tom_low")


def _label_words(label: str) -> list[str]:
    label = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", label).lower()
    return re.findall(r"[a-z]+|\d+", label)


def key_role(key: int, label: str) -> str | None:
    """The drum a key plays: from its labels (region, group, master: the most specific
    that names a drum), else from its GM number when it has no worded label.

    A label naming no drum is read with the wider labels around it: a group 'Open
    Clang' under a master 'Hihat' is an open hi-hat, 'Rimshot' under 'Snare' a rimshot
    (read alone, the master would make every hi-hat state one closed hi-hat)."""
    parts = [
        re.sub(r"(?i)\bk(ick)?-?drum", "Kick ", p)  # 'KdrumL', 'Kickdrum'
        for p in label.split("|")
        if p.strip()
    ]
    for i, part in enumerate(parts):
        role = classify_instrument(part)
        if role is not None:
            return role
        if classify_instrument(f"{part} kick") is None:
            return None  # it names what drumtx skips: a roll, a choke, a clap
        role = classify_instrument(" ".join(parts[i:]))
        if role is not None:
            return role
    if any(re.search("[A-Za-z]{3}", p) for p in parts):
        return None  # worded, but no drum we know
    return _GM_ROLE.get(key)


def _rank(voice: str, key: int, label: str) -> tuple:
    """Sort key among a role's keys: plain hits first, then the voice's GM key."""
    gm = GM_DRUM_NOTE[voice]
    words = set(_label_words(label))
    # The most special word counts: a "China Cymbal" ranks as a china, not a cymbal.
    cymbal = max((r for w, r in _CYMBAL_RANK.items() if w in words), default=0)
    return bool(words & _ODD_WORDS), cymbal, key != gm, abs(key - gm), key


def _assign_toms(by_role: dict[str, list[int]], labels: Mapping[int, str]):
    """Tom voices: named toms first; unnamed ones ('Tom1'..'Tom4') by their number (or
    by key, high first) fill high, low, then mid: a 4-tom kit plays 1, 2 and 4."""
    voices = {r: min(by_role[r], key=lambda k: _rank(r, k, labels[k]))
              for r in _TOMS if by_role.get(r)}  # fmt: skip

    def order(k: int) -> tuple:
        numbers = [int(w) for w in _label_words(labels[k]) if w.isdigit()]
        return (numbers[0] if numbers else 0, -k)

    unnamed = sorted(by_role.get("tom", []), key=order)
    picks = {}
    if unnamed:
        picks = {"tom_high": unnamed[0], "tom_low": unnamed[-1]}
        if len(unnamed) >= 3:
            picks["tom_mid"] = unnamed[(len(unnamed) - 1) // 2]
    for role, key in picks.items():
        voices.setdefault(role, key)
    return voices


def map_keys(labels: Mapping[int, str]) -> dict[str, int]:
    """Voice (a VOICE_OF_PITCH value) -> the kit key playing it; absent: silent."""
    by_role: dict[str, list[int]] = {}
    for key, label in sorted(labels.items()):
        role = key_role(key, label)
        if role is not None:
            by_role.setdefault(role, []).append(key)
    voices = {}
    for voice, roles in ROLE_FALLBACKS.items():
        role = next((r for r in roles if by_role.get(r)), None)
        if role is not None:
            voices[voice] = min(by_role[role], key=lambda k: _rank(voice, k, labels[k]))
    for role, key in _assign_toms(by_role, labels).items():
        voices[role] = voices[role + "_rim"] = key
    crashes = by_role.get("crash") or by_role.get("crash_ride") or []
    ranked = sorted(crashes, key=lambda k: _rank("crash1", k, labels[k]))
    if ranked:
        voices["crash1"] = voices["crash1_edge"] = ranked[0]
        second = sorted(ranked[1:], key=lambda k: _rank("crash2", k, labels[k]))
        voices["crash2"] = voices["crash2_edge"] = (second or ranked)[0]
    return voices


# ----------------------------------------------------------- microphones and mixing

MIC_KINDS = ("close", "overhead", "room", "mix")  # "mix": a file that is a whole mix
DEFAULT_BALANCE = {"close": 1.0, "overhead": 0.5, "room": 0.3, "mix": 1.0}
REGION_CACHE_BYTES = 512 * 2**20  # decoded samples kept; multi-mic kits are large


@dataclass(frozen=True)
class Mic:
    """One microphone of a kit: an .sfz file and the regions it plays."""

    name: str
    kind: str  # one of MIC_KINDS
    regions: tuple[Region, ...]
    silences: tuple[Silence, ...] = ()


def mic_kind(stem: str) -> str | None:
    """What a microphone file's name says it is; None for trigger (non-audio) tracks."""
    words = set(_label_words(stem))
    if "trigger" in words or "trig" in words:
        return None
    if words & {"amb", "ambience", "ambient", "room", "rooms", "far", "hall"}:
        return "room"
    if words & {"oh", "ohl", "ohr", "overhead", "overheads"}:
        return "overhead"
    return "close"


def sfz_files(path: Path) -> list[Path]:
    """A kit's .sfz files: the file itself, or every .sfz in a folder (one per mic)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.sfz"))
    if not files:
        raise ConfigError(f"no SFZ kit at {path}: neither an .sfz file nor a folder "
                          "holding .sfz files", hint=SFZ_HINT)  # fmt: skip
    return files


def draw_balance(mics: Sequence[Mic], rng: np.random.Generator) -> tuple[float, ...]:
    """Per-mic gains for one render: close, overheads and room at a random balance (a
    few renders without close mics, as in an overheads-only recording), each mic
    jittered by about 1.5 dB."""
    kinds = {
        "close": 0.0 if rng.random() < 0.15 else 1.0,
        "overhead": 10 ** (rng.uniform(-10, 4) / 20),
        "room": 10 ** (rng.uniform(-18, 0) / 20),
        "mix": 1.0,
    }
    gains = [kinds[m.kind] * 10 ** (rng.normal(0, 1.5) / 20) for m in mics]
    if sum(gains) <= 0:
        gains = [1.0] * len(mics)
    return tuple(float(g) for g in gains)


def _silent_strike(instrument: str) -> Strike:
    return Strike(Sound(np.zeros(1, np.float32), 0), 0.0, instrument, None, False)


def _region_labels(mics: Sequence[Mic]) -> dict[int, str]:
    """Each key a region plays (ranges of up to 4 keys) -> its first region label."""
    labels: dict[int, str] = {}
    for mic in mics:
        for region in mic.regions:
            if region.hikey - region.lokey < 4:
                for key in range(region.lokey, region.hikey + 1):
                    if not labels.get(key):
                        labels[key] = region.label
    return labels


class SfzKit(Kit):
    """A sampled kit read from an .sfz file or a folder of per-microphone .sfz files."""

    master_gain = 0.5  # headroom: kits' samples are often normalised to full scale
    fade_sec = 0.01

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        check_not_reserved_kit(self.path)
        self.name = f"sfz:{self.path}"
        digest = hashlib.sha256(f"sfz-v{SYNTH_VERSION}".encode())
        self.mics = []
        for file in sfz_files(self.path):
            kind = mic_kind(file.stem)
            if kind is not None:
                digest.update(f"|{file.name}|".encode() + file.read_bytes())
                regions, silences = read_sfz_chokes(file)
                self.mics.append(Mic(file.stem, kind, tuple(regions), tuple(silences)))
        if len(self.mics) == 1:
            self.mics[0] = replace(self.mics[0], kind="mix")
        self._chokers = {r.off_by for m in self.mics for r in m.regions
                         if r.off_by is not None and r.off_by != r.group}  # fmt: skip
        self._key_of = map_keys(_region_labels(self.mics))
        self._check_playable()
        self.voices = frozenset(self._key_of)
        self._by_key: dict[int, list[tuple[int, int]]] = {}
        self._rings: frozenset[str] = frozenset()
        self._rings = self._ringing_groups()
        # what the reading of the kit decides is part of its sound: which key plays
        # each voice, and (since 2026-12-07) silent regions closing ringing hits
        digest.update(repr(sorted(self._key_of.items())).encode())
        if self._silences_close():
            digest.update(b"|silences choke")
        self.fingerprint = f"sfz:{self.path.name}:{digest.hexdigest()[:16]}"
        self._balance = tuple(DEFAULT_BALANCE[m.kind] for m in self.mics)
        self._seq: dict[tuple[int, int], int] = {}  # round-robin counter per region
        self._mixes: dict[tuple, Sound] = {}
        self._audio: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._audio_bytes = 0

    def _check_playable(self) -> None:
        missing = [v for v in ("kick", "snare") if v not in self._key_of]
        if missing:
            raise ConfigError(
                f"SFZ kit {self.path} has no {' or '.join(missing)} that a note-on "
                f"plays; its keys: {sorted(_region_labels(self.mics)) or 'none'}",
                hint="use a drum kit with a kick and a snare; " + SFZ_HINT,
            )
        absent = sorted({str(r.sample) for m in self.mics for r in m.regions
                         if not r.sample.is_file()})  # fmt: skip
        if absent:
            raise ConfigError(
                f"SFZ kit {self.path} misses {len(absent)} sample file(s), e.g. "
                f"{absent[0]}",
                hint="rebuild the kit folder: python tools/fetch_real_kits.py",
            )

    @property
    def key_map(self) -> dict[str, int]:
        """Voice -> the kit key it plays (read from the kit's labels and layout)."""
        return dict(self._key_of)

    def render(
        self,
        notes: Sequence[Note],
        duration_sec: float,
        sample_rate: int,
        *,
        seed: int = 0,
        dynamics: float = 1.0,
        buzz: SnareBuzz | None = None,
        faders: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """The shared render (``dynamics``, ``buzz``, ``faders`` as there), with round
        robins restarted and the microphones at a balance drawn from notes and seed."""
        self._seq.clear()
        if len(self.mics) > 1:
            balance = draw_balance(
                self.mics, note_rng(notes, self.fingerprint + "|mics", seed)
            )
            if balance != self._balance:
                self._balance = balance
                self._mixes.clear()  # sounds at the old balance are not heard again
        return super().render(notes, duration_sec, sample_rate, seed=seed,
                              dynamics=dynamics, buzz=buzz, faders=faders)  # fmt: skip

    def _playing(
        self, key: int, velocity: int, rand: float
    ) -> list[tuple[int, int, Region]]:
        """(mic, region index, region) of every region a note-on starts, as a sampler
        decides: key and velocity range, the shared random number, the round robin."""
        chosen = []
        for m, i in self._regions_of_key(key):
            region = self.mics[m].regions[i]
            if region.lovel <= velocity <= region.hivel:
                count = self._seq.get((m, i), 0)
                self._seq[(m, i)] = count + 1
                in_rand = (
                    region.lorand <= rand < region.hirand or rand == region.hirand == 1
                )
                if count % region.seq_length == region.seq_position - 1 and in_rand:
                    chosen.append((m, i, region))
        return chosen

    def _regions_of_key(self, key: int) -> list[tuple[int, int]]:
        """(mic, region index) of the regions whose key range holds ``key``."""
        if key not in self._by_key:
            self._by_key[key] = [
                (m, i)
                for m, mic in enumerate(self.mics)
                for i, r in enumerate(mic.regions)
                if r.lokey <= key <= r.hikey
            ]
        return self._by_key[key]

    def _region_audio(self, m: int, i: int, key: int, sample_rate: int) -> np.ndarray:
        """A region's rendered sample, from a bounded cache (oldest use out first)."""
        cache_key = (m, i, key, sample_rate)
        if cache_key in self._audio:
            self._audio.move_to_end(cache_key)
            return self._audio[cache_key]
        audio = render_region(self.mics[m].regions[i], key, sample_rate)
        self._audio[cache_key] = audio
        self._audio_bytes += audio.nbytes
        while self._audio_bytes > REGION_CACHE_BYTES and len(self._audio) > 1:
            _, old = self._audio.popitem(last=False)
            self._audio_bytes -= old.nbytes
        return audio

    def _mix(self, chosen, key: int, sample_rate: int) -> Sound:
        """The regions summed at the current mic balance, the loudest kind of mic at
        unity (the render's limiter catches what the sum adds)."""
        cache_key = (tuple((m, i) for m, i, _ in chosen), key, sample_rate)
        if cache_key not in self._mixes:
            parts = [
                (self._balance[m] * r.gain, self._region_audio(m, i, key, sample_rate))
                for m, i, r in chosen
            ]
            out = np.zeros(max(a.size for _, a in parts), np.float32)
            for gain, audio in parts:
                out[: audio.size] += gain * audio
            out /= max(self._balance)
            peak = float(np.abs(out).max())
            snd = anchor_sound(out, sample_rate)  # normalised: keep the level apart
            self._mixes[cache_key] = Sound(snd.audio * peak, snd.onset)
        return self._mixes[cache_key]

    def _group(self, group: int) -> str:
        """A choke group's name, this kit's own (a virtual kit mixes several kits)."""
        return f"{self.name}#{group}"

    def _choke(self, voice: str, region: Region) -> tuple[str | None, bool]:
        """The kit's own group/off_by choking where it has one, else the hi-hat rule."""
        if region.off_by is not None and region.off_by != region.group:
            return self._group(region.off_by), False
        if region.group in self._chokers:
            return self._group(region.group), True
        return hat_choke(voice)

    def _note_ons(self) -> Iterator[tuple[str, int, int, list]]:
        """(voice, key, velocity, regions started) for one velocity of each span of
        velocities over which a voice's key starts the same regions and silences
        (round robins aside)."""
        for voice, key in self._key_of.items():
            regions = [(m, i, self.mics[m].regions[i])
                       for m, i in self._regions_of_key(key)]  # fmt: skip
            spans = [r for _, _, r in regions]
            spans += [s for m in self.mics for s in m.silences
                      if s.lokey <= key <= s.hikey]  # fmt: skip
            starts = {1} | {s.lovel for s in spans} | {s.hivel + 1 for s in spans}
            for vel in sorted(v for v in starts if 1 <= v <= 127):
                chosen = [c for c in regions if c[2].lovel <= vel <= c[2].hivel]
                if chosen:
                    yield voice, key, vel, chosen

    def _ringing_groups(self) -> frozenset[str]:
        """The kit's choke groups some voice's hits ring in until closed."""
        owns = (self._choke(v, chosen[0][2]) for v, _, _, chosen in self._note_ons())
        return frozenset(group for group, chokes in owns if group and not chokes)

    def _silences_close(self) -> bool:
        """Whether some note-on closes a ringing group beyond its own (through silent
        regions, or regions past its first)."""
        return any(
            self._silenced(key, vel, chosen, self._choke(voice, chosen[0][2]))
            for voice, key, vel, chosen in self._note_ons()
        )

    def _silenced(self, key: int, velocity: int, chosen, own: tuple) -> tuple[str, ...]:
        """The ringing choke groups a note-on closes besides its own ``(group,
        chokes)``: the groups of the regions it starts and of the kit's silent ones."""
        groups = {r.group for _, _, r in chosen}
        for mic in self.mics:
            groups |= {s.group for s in mic.silences if s.plays(key, velocity)}
        names = {self._group(g) for g in groups if g in self._chokers}
        return tuple(sorted(n for n in names & self._rings if (n, True) != own))

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        """Every region the kit's key plays at this velocity, in every microphone."""
        key = self._key_of[voice]
        instrument = f"{self.name}:{key}"
        vel = int(np.clip(round(velocity * 127), 1, 127))
        chosen = self._playing(key, vel, float(rng.random()))
        if not chosen:
            return _silent_strike(instrument)
        first = chosen[0][2]
        gain = self.master_gain * velocity_gain(vel, first)
        snd = self._mix(chosen, key, sample_rate)
        own = self._choke(voice, first)
        silenced = self._silenced(key, vel, chosen, own) if self._rings else ()
        return Strike(snd, gain, instrument, *own, silences=silenced)
