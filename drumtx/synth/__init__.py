"""Render drum notes (Roland TD-17 pitch numbers) into mono audio through a drum kit,
and generate the grooves that feed it.

Modules, bottom up: ``dsp`` (anchoring, mixing, chokes, synthesis primitives) <- ``kit``
(voices, ``Kit``: per-voice strikes, one shared render) <- ``voices`` +
``synthkit`` (synthesised kits), ``hydrogen`` (sampled Hydrogen drumkits), ``soundfont``
and ``sfz`` (SFZ kits, multi-microphone ones included) <- ``load``
(kit specs). ``grooves`` (generated performances) stands apart. This module only
re-exports what the rest of drumtx uses.
"""

from __future__ import annotations

from drumtx.synth.hydrogen import (
    HYDROGEN_ROOT,
    HydrogenKit,
    classify_instrument,
    list_hydrogen_kits,
)
from drumtx.synth.kit import SYNTH_VERSION, VOICE_OF_PITCH, Kit
from drumtx.synth.load import load_kit, load_kits
from drumtx.synth.sfz import SfzKit
from drumtx.synth.synthkit import SynthKit

__all__ = [
    "HYDROGEN_ROOT",
    "SYNTH_VERSION",
    "VOICE_OF_PITCH",
    "HydrogenKit",
    "Kit",
    "SfzKit",
    "SynthKit",
    "classify_instrument",
    "list_hydrogen_kits",
    "load_kit",
    "load_kits",
]
