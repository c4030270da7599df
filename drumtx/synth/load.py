"""Kit specs from the command line and the CSV's kit_name -> kits.

A spec is ``synth:SEED``, ``sf:NAME[:PRESET]`` (the drum kit at bank 128 of a General
MIDI SoundFont, by file stem or path; reserved evaluation SoundFonts are refused),
``sfz:PATH`` (an SFZ kit: a .sfz file, or a folder whose .sfz files are the
microphones of one recorded kit; reserved evaluation kits are refused),
``virtual:SEED`` (each instrument family from another of the given kits), the name of
an installed Hydrogen kit (case-insensitive) or a folder holding a ``drumkit.xml``;
make-dataset writes ``kit.name`` into its CSV, and loading that name again gives the
same kit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drumtx.errors import ConfigError
from drumtx.synth.hydrogen import HYDROGEN_ROOT, HydrogenKit, list_hydrogen_kits
from drumtx.synth.kit import Kit
from drumtx.synth.sfz import SfzKit
from drumtx.synth.soundfont import SoundfontKit, check_not_reserved, list_soundfonts
from drumtx.synth.studio import VirtualKit
from drumtx.synth.synthkit import SynthKit


def load_kits(specs: Sequence[str]) -> list[Kit]:
    """Every spec's kit; ``virtual:SEED`` kits draw from the other kits of the list."""
    real = {spec: load_kit(spec) for spec in specs if not _is_virtual(spec)}
    donors = list(real.values())
    kits = []
    for spec in specs:
        if not _is_virtual(spec):
            kits.append(real[spec])
            continue
        if not donors:
            raise ConfigError(
                f"{spec} takes its instruments from the other kits given, and there "
                "are none",
                hint="e.g. --kits synth:1 Audiophob virtual:1",
            )
        kits.append(VirtualKit(_seed_of(spec), donors))
    return kits


def _is_virtual(spec: str) -> bool:
    return spec.lower().startswith("virtual:")


def _seed_of(spec: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except ValueError:
        raise ConfigError(
            f"bad kit {spec!r}: the seed must be an integer",
            hint="e.g. --kits synth:1 virtual:2",
        ) from None


def load_soundfont_kit(spec: str) -> SoundfontKit:
    """``sf:NAME[:PRESET]``: NAME is an installed SoundFont's stem or a file path."""
    body = spec.split(":", 1)[1]
    name, _, preset = body.rpartition(":")
    if not name or not preset.isdigit():
        name, preset = body, "0"
    path = Path(name).expanduser()
    if not path.is_file():
        installed = {p.stem.lower(): p for p in list_soundfonts()}
        if name.lower() not in installed:
            check_not_reserved(Path(name))  # a reserved name gets the reserved error
            raise ConfigError(
                f"unknown SoundFont {name!r} in {spec!r}",
                hint="installed: "
                + (", ".join(sorted(installed)) or "none")
                + "; or give a .sf2/.sf3 path",
            )
        path = installed[name.lower()]
    return SoundfontKit(path, int(preset))


def load_kit(spec: str) -> Kit:
    """``synth:SEED``, ``sf:NAME[:PRESET]``, ``sfz:PATH``, a Hydrogen kit name or a
    drumkit folder."""
    if spec.lower().startswith("sf:"):
        return load_soundfont_kit(spec)
    if spec.lower().startswith("sfz:"):
        return SfzKit(Path(spec.split(":", 1)[1]))
    if _is_virtual(spec):
        raise ConfigError(f"{spec} needs donor kits: name it among other --kits")
    if spec.lower().startswith("synth:"):
        try:
            return SynthKit(int(spec.split(":", 1)[1]))
        except ValueError:
            raise ConfigError(
                f"bad synth kit {spec!r}: the seed must be an integer",
                hint="e.g. --kits synth:1 synth:2",
            ) from None
    path = Path(spec).expanduser()
    if (path / "drumkit.xml").is_file():
        return HydrogenKit(path)
    for folder in list_hydrogen_kits():
        if folder.name.lower() == spec.lower():
            return HydrogenKit(folder)
    names = [p.name for p in list_hydrogen_kits()]
    raise ConfigError(
        f"unknown drum kit {spec!r}: not synth:SEED, sf:NAME[:PRESET], sfz:PATH, "
        "virtual:SEED, a Hydrogen kit name, or a folder holding drumkit.xml",
        hint="available: synth:SEED (any integer), virtual:SEED"
        + (
            f", {', '.join(names)}"
            if names
            else f" (no Hydrogen kits in {HYDROGEN_ROOT})"
        ),
    )
