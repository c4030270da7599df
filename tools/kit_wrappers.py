"""Per-microphone SFZ files for kits whose own SFZ drumtx cannot play as it is.

karoryfer's Gogodze Phu Vol II (CC0) keeps its seven microphones in one
Programs/Kit.sfz: each piece and mic is a ``<master>`` (its level set by controllers,
``amplitude_ccN`` at the ``set_ccN`` defaults) in front of an ``#include`` of
Programs/mappings/<piece>_<mic>_mic.sfz; the hi-hat states share key 46 and are picked
by CC4, the extra room mics by CC105, and every key is unlabelled. drumtx's reader
wants one .sfz per microphone with every drum on its own labelled key, so
``write_gogodze_mics`` writes that from the kit's own files:

* each piece's mapping copied with its groups labelled, the hi-hat states that share
  key 46 with the open hat moved to keys 22-24 (mapped, never played);
* each piece's level and sample offset at the kit's default controllers;
* left out, as a plain note-on at the default controllers never hears them: the
  transposed tom copies (``locc114``) and the mute regions (``*silence``); the choke
  groups too (drumtx's hi-hat rule chokes the open hat). Not expressible in what
  drumtx reads: pan (the files are mono), the retro mic's high-pass filter.

Gogodze has no cymbals, so its renders would drop GMD's ride and crash notes;
``graft_cymbals`` writes KIT_DIR/mics-cymbals: the same wrappers with MuldjordKit's
ride and crash regions, each Gogodze mic taking them from the MuldjordKit mic in the
same place (``MULDJORD_FOR_GOGODZE``), at one level factor (the kits' hardest snare in
the overheads).

Used by tools/fetch_real_kits.py; ``python tools/kit_wrappers.py KIT_DIR
[--graft-cymbals MULDJORD/DrumGizmo/MuldjordKit/Multi]`` rewrites the wrappers of an
extracted kit.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from drumtx.synth.sfz import (
    SfzKit,
    opcodes,
    region_sfz,
    render_region,
    strip_comments,
)

# mic folder in the kit -> wrapper name (drumtx's mic_kind reads the kind from it)
GOGODZE_MICS = {
    "kick": "close_kick",
    "snare": "close_snare",
    "oh": "overhead_oh",  # the "Glyn Johns" pair: over the snare ...
    "side": "overhead_side",  # ... and beside the floor tom
    "front": "room_front",  # the "+1 mic"
    "wndw": "room_window",  # the "+3 mics"
    "retro": "room_retro",
}
# mapping-file prefix -> {key in the kit: (key written, label)}
GOGODZE_PIECES = {
    "kick": {36: (36, "Kick")},
    "snare": {38: (38, "Snare"), 40: (40, "Snare Edge"), 37: (37, "Snare Side Stick")},
    "toml": {41: (41, "Tom Low")},
    "tomm": {43: (43, "Tom Mid")},
    "tomh": {45: (45, "Tom High")},
    "hf": {44: (44, "Hihat Pedal")},
    "ht": {42: (42, "Hihat Closed Tight")},
    "hc": {46: (22, "Hihat Closed")},
    "hl": {46: (23, "Hihat Loose")},
    "hh": {46: (24, "Hihat Half Open")},
    "ho": {46: (46, "Hihat Open")},
}
MICS_DIR = "mics"  # the wrappers' folder inside the kit (the --kits sfz: path)


def _curve_at(points: dict[int, float], x: float) -> float:
    """A <curve> (points v000..v127) at x, linear between its points."""
    lo = max(p for p in points if p <= x)
    hi = min(p for p in points if p >= x)
    if lo == hi:
        return points[lo]
    return points[lo] + (points[hi] - points[lo]) * (x - lo) / (hi - lo)


def read_gogodze_kit(programs: Path) -> tuple[dict, dict[tuple[str, str], dict]]:
    """From Kit.sfz: per (piece, mic) the level (0..1) and sample offset a plain
    note-on gets at the default controllers, and the global opcodes."""
    text = strip_comments((programs / "Kit.sfz").read_text())
    parts = re.split(r"<(\w+)>", text)
    cc: dict[int, float] = {}
    glob: dict[str, str] = {}
    curves: dict[int, dict[int, float]] = {}
    masters: dict[tuple[str, str], dict[str, str]] = {}
    for header, body in zip(parts[1::2], parts[2::2]):
        ops = opcodes(re.sub(r'#include\s+"[^"]*"', " ", body))
        if header == "control":
            cc = {int(k[6:]): float(v) for k, v in ops.items() if k[:6] == "set_cc"}
        elif header == "global":
            glob = ops
        elif header == "curve":
            curves[int(ops["curve_index"])] = {
                int(k[1:]): float(v) for k, v in ops.items() if re.fullmatch(r"v\d+", k)
            }
        elif header == "master" and "locc114" not in ops:  # transposed toms: off
            for name in re.findall(r'#include\s+"mappings/(\w+)_mic\.sfz"', body):
                piece, mic = name.rsplit("_", 1)
                if piece in GOGODZE_PIECES and mic in GOGODZE_MICS:
                    masters[(piece, mic)] = ops
    levels = {}
    for key, ops in masters.items():
        level = 1.0
        for name, value in ops.items():
            if m := re.fullmatch(r"amplitude_cc(\d+)", name):
                level *= float(value) / 100 * cc.get(int(m.group(1)), 0.0) / 127
        offset = float(ops.get("offset", 0))
        if "offset_cc110" in ops:
            index = int(ops.get("offset_curvecc110", glob.get("offset_curvecc110", 0)))
            x = cc.get(110, 0.0)  # curve 0 (or none given): linear
            at = _curve_at(curves[index], x) if index in curves else x / 127
            offset += float(ops["offset_cc110"]) * at
        seq = ops.get("seq_length", glob.get("seq_length", "1"))
        levels[key] = {"level": level, "offset": round(offset), "seq_length": seq}
    return glob, levels


def _mapping(programs: Path, piece: str, mic: str) -> str:
    """A piece's mapping for one mic: groups labelled, keys moved, sample paths made
    relative to the kit folder."""
    path = programs / "mappings" / f"{piece}_{mic}_mic.sfz"
    text = strip_comments(path.read_text())
    out = []
    for part in re.split(r"(?=<group>)", text):
        part = "\n".join(line.strip() for line in part.splitlines() if line.strip())
        if not part:
            continue
        if part.startswith("<group>"):
            lo = re.search(r"\blokey=(\d+)", part)
            hi = re.search(r"\bhikey=(\d+)", part)
            if lo is None or hi is None or lo.group(1) != hi.group(1):
                raise ValueError(f"{piece}_{mic}_mic.sfz: a group not on one key")
            key, label = GOGODZE_PIECES[piece][int(lo.group(1))]
            part = re.sub(r"\b(lo|hi)key=\d+", rf"\g<1>key={key}", part)
            part = part.replace("<group>", f"<group>\ngroup_label={label}", 1)
        out.append(part.replace("sample=../Samples/", "sample=Samples/"))
    return "\n\n".join(out)


def write_gogodze_mics(kit_dir: Path) -> list[Path]:
    """Write KIT_DIR/mics/<kind>_<mic>.sfz for the extracted kit in KIT_DIR."""
    programs = kit_dir / "Programs"
    _, levels = read_gogodze_kit(programs)
    out_dir = kit_dir / MICS_DIR
    out_dir.mkdir(exist_ok=True)
    written = []
    for mic, stem in GOGODZE_MICS.items():
        lines = [f"// Gogodze Phu Vol II (Karoryfer Lecolds, CC0 1.0): the {mic} mic.",
                 "// Written by drumtx tools/kit_wrappers.py from Programs/Kit.sfz and "
                 f"Programs/mappings/*_{mic}_mic.sfz.",
                 "<control>", "default_path=../",
                 "<global>", "loop_mode=one_shot", "pitch_keytrack=0",
                 "off_mode=normal", "ampeg_release=0.07"]  # fmt: skip
        for piece in GOGODZE_PIECES:
            if (piece, mic) not in levels:
                raise ValueError(f"Kit.sfz plays no {piece}_{mic}_mic.sfz")
            lv = levels[(piece, mic)]
            lines += [f"<master> // {piece}", f"amplitude={100 * lv['level']:.2f}",
                      f"seq_length={lv['seq_length']}"]  # fmt: skip
            if lv["offset"] > 0:
                lines.append(f"offset={lv['offset']}")
            lines.append(_mapping(programs, piece, mic))
        path = out_dir / f"{stem}.sfz"
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


# Gogodze mic -> the MuldjordKit microphone its grafted cymbals are taken from
MULDJORD_FOR_GOGODZE = {
    "close_kick": "Kickdrum left",
    "close_snare": "Snare top",
    "overhead_oh": "Overhead left",
    "overhead_side": "Overhead right",
    "room_front": "Ambience left",
    "room_window": "Ambience right",
    "room_retro": "Ambience left",
}
CYMBAL_VOICES = ("ride", "ride_edge", "ride_bell", "crash1", "crash2")
GRAFT_DIR = "mics-cymbals"  # the grafted wrappers' folder inside the kit


def _snare_level(kit: SfzKit, mic_name: str, sample_rate: int = 44_100) -> float:
    """RMS over 0.3 s of the kit's hardest snare hit in one mic, its gain applied."""
    mic = next(m for m in kit.mics if m.name == mic_name)
    key = kit.key_map["snare"]
    regions = [r for r in mic.regions if r.lokey <= key <= r.hikey]
    top = max(r.hivel for r in regions)
    levels = []
    for r in regions:
        if r.hivel == top:
            audio = render_region(r, key, sample_rate)[: int(0.3 * sample_rate)]
            rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
            levels.append(r.gain * rms)
    return float(np.mean(levels))


def graft_cymbals(
    mics_dir: Path, donor_dir: Path, donor_mics: dict[str, str], out_dir: Path
) -> list[Path]:
    """Copies of a cymbal-less kit's per-mic files with a donor kit's ride and crash
    regions added, each mic taking them from the donor's mic ``donor_mics`` names.

    A kit without cymbals renders GMD's ride and crash notes as nothing, so its
    renders never set a real hi-hat beside a real ride. The donor's regions keep their
    own keys (they must be free in the kit), velocity layers and round robins; their
    level is scaled by one factor, the kit's hardest snare in its first overhead mic
    over the donor's in the mic ``donor_mics`` pairs with it, so the cymbals sit
    against the drums as they do in the donor.
    """
    kit, donor = SfzKit(mics_dir), SfzKit(donor_dir)
    keys = sorted({donor.key_map[v] for v in CYMBAL_VOICES if v in donor.key_map})
    taken = set(keys) & {k for m in kit.mics for r in m.regions
                         for k in range(r.lokey, r.hikey + 1)}  # fmt: skip
    if not keys or taken:
        raise ValueError(f"donor cymbal keys {keys} missing or already played: {taken}")
    ref = next(m.name for m in kit.mics if m.kind == "overhead")
    scale = _snare_level(kit, ref) / _snare_level(donor, donor_mics[ref])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file in sorted(mics_dir.glob("*.sfz")):
        mic = next(m for m in donor.mics if m.name == donor_mics[file.stem])
        root = Path(os.path.commonpath([r.sample for r in mic.regions])).parent
        text = re.sub(  # the kit's own samples, found from out_dir
            r"default_path=(\S*)",
            lambda m: (
                "default_path=" + os.path.relpath(mics_dir / m.group(1), out_dir) + "/"
            ),
            file.read_text(),
        )
        lines = [
            text,
            f"// grafted: cymbals of {donor_dir.name} ({mic.name} mic), level "
            f"x{scale:.3f} (snare against snare)",
            "<control>",
            f"default_path={os.path.relpath(root, out_dir)}/",
            "<master>",
        ]  # no label: an unlabelled key maps by its GM number
        for r in mic.regions:
            if r.lokey == r.hikey and r.lokey in keys:
                lines.append(region_sfz(replace(r, gain=r.gain * scale), root))
        path = out_dir / file.name
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def graft_gogodze(kit_dir: Path, muldjord_multi: Path) -> list[Path]:
    """KIT_DIR/mics-cymbals: Gogodze's wrappers with MuldjordKit's cymbals."""
    return graft_cymbals(
        kit_dir / MICS_DIR, muldjord_multi, MULDJORD_FOR_GOGODZE, kit_dir / GRAFT_DIR
    )


WRAPPERS = {"gogodze": write_gogodze_mics}
GRAFTS = {"gogodze": graft_gogodze}  # after WRAPPERS: (kit folder, donor mic folder)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kit_dir", type=Path, help="the extracted Gogodze kit")
    parser.add_argument(
        "--graft-cymbals",
        type=Path,
        metavar="MULDJORD_MULTI",
        help="also write KIT_DIR/mics-cymbals: the wrappers with MuldjordKit's "
        "cymbals (its DrumGizmo/MuldjordKit/Multi folder)",
    )
    args = parser.parse_args(argv)
    for p in write_gogodze_mics(args.kit_dir):
        print(f"wrote {p}")
    if args.graft_cymbals:
        for p in graft_gogodze(args.kit_dir, args.graft_cymbals):
            print(f"wrote {p}")


if __name__ == "__main__":
    main(sys.argv[1:])
