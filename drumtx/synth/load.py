"""Kit specs from the command line and the CSV's kit_name -> kits.

A spec is ``synth:SEED``, the name of an installed Hydrogen kit (case-insensitive) or a
folder holding a ``drumkit.xml``; make-dataset writes ``kit.name`` into its CSV, and
loading that name again gives the same kit.
"""

from __future__ import annotations

from pathlib import Path

from drumtx.errors import ConfigError
from drumtx.synth.hydrogen import HYDROGEN_ROOT, HydrogenKit, list_hydrogen_kits
from drumtx.synth.kit import Kit
from drumtx.synth.synthkit import SynthKit


def load_kit(spec: str) -> Kit:
    """``synth:SEED``, a Hydrogen kit name (case-insensitive) or a drumkit folder."""
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
        f"unknown drum kit {spec!r}: not synth:SEED, a Hydrogen kit name, "
        "or a folder holding drumkit.xml",
        hint="available: synth:SEED (any integer)"
        + (
            f", {', '.join(names)}"
            if names
            else f" (no Hydrogen kits in {HYDROGEN_ROOT})"
        ),
    )
