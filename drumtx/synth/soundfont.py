"""General MIDI SoundFonts through FluidSynth: backing instruments and drum banks.

FluidSynth (the C library, Debian's ``libfluidsynth3``) is driven through the PyPI
package ``pyfluidsynth``; both are optional and imported only when a SoundFont is
rendered. Some SoundFonts are reserved for independent evaluation and are refused
everywhere a SoundFont can be named, whatever the file is called or linked as.
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drumtx.errors import ConfigError
from drumtx.synth.dsp import Sound, anchor_sound
from drumtx.synth.kit import SYNTH_VERSION, Kit, Strike, hat_choke

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"))
SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
# Debian packages whose SoundFonts evaluate drumtx and must never train it.
RESERVED_PACKAGES = (
    "fluid-soundfont-gm",
    "fluid-soundfont-gs",
    "fluidr3mono-gm-soundfont",
    "musescore-general-soundfont",
    "musescore-general-soundfont-small",
    "musescore-general-soundfont-lossless",
    "avldrums.lv2-soundfont",
)
# The same SoundFonts by name, for copies outside the packages' own paths.
RESERVED_NAMES = re.compile(
    r"fluid.?r3|fluid.?soundfont|musescore.?general|avl.?drum|red.?zeppelin",
    re.IGNORECASE,
)
# AVL Drumkits (avldrums.lv2) also ship as SFZ and DrumGizmo kits: "Black Pearl" and
# "Red Zeppelin". Sampled kits are refused when any folder on their path says so.
RESERVED_KIT_NAMES = re.compile(
    r"avl.?drum|red.?zeppelin|black.?pearl|fluid.?r3|musescore.?general",
    re.IGNORECASE,
)
DPKG_INFO = Path("/var/lib/dpkg/info")
BLOCK_SAMPLES = 64  # FluidSynth's internal block: note times land on multiples of it


@functools.lru_cache(maxsize=1)
def _reserved_package_files() -> frozenset[Path]:
    files: set[Path] = set()
    for package in RESERVED_PACKAGES:
        for listing in DPKG_INFO.glob(f"{package}*.list"):
            for line in listing.read_text(errors="replace").splitlines():
                if line.lower().endswith(SOUNDFONT_SUFFIXES):
                    files.add(Path(line).resolve())
    return frozenset(files)


def is_reserved(path: Path) -> bool:
    """Whether ``path`` (or what it links to) is a reserved evaluation SoundFont."""
    path = Path(path)
    real = path.resolve()
    if RESERVED_NAMES.search(path.name) or RESERVED_NAMES.search(real.name):
        return True
    return real in _reserved_package_files()


def check_not_reserved(path: Path) -> None:
    if is_reserved(path):
        raise ConfigError(
            f"{path} is a SoundFont reserved for independent evaluation "
            f"({Path(path).resolve().name}); drumtx never trains on it",
            hint="use another General MIDI bank, e.g. "
            "/usr/share/sounds/sf2/TimGM6mb.sf2 (apt-get install timgm6mb-soundfont)",
        )


def check_not_reserved_kit(path: Path) -> None:
    """Refuse a sampled kit (SFZ, DrumGizmo) from a reserved evaluation source, by the
    name of the kit's file or of any folder above it, linked or not."""
    path = Path(path).expanduser()
    names = [*path.parts, *path.resolve().parts]
    hit = next((n for n in names if RESERVED_KIT_NAMES.search(n)), None)
    if hit is not None:
        raise ConfigError(
            f"{path} is a drum kit reserved for independent evaluation ({hit}: "
            "AVL Drumkits, avldrums.lv2); drumtx never trains on it",
            hint="use another kit; see the kit manifest written by "
            "tools/fetch_real_kits.py",
        )


def list_soundfonts(dirs: Sequence[Path] = SOUNDFONT_DIRS) -> list[Path]:
    """The usable (non-reserved) SoundFont files under ``dirs``, each file once."""
    found: dict[Path, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in SOUNDFONT_SUFFIXES and path.is_file():
                if not is_reserved(path):
                    found.setdefault(path.resolve(), path)
    return sorted(found.values())


def fluidsynth_available() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):  # the package, or libfluidsynth, is missing
        return False
    return True


def _import_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise ConfigError(
            f"rendering SoundFonts needs FluidSynth, which is missing ({exc})",
            hint="apt-get install libfluidsynth3 && pip install -e '.[render]'",
        ) from None
    return fluidsynth


class SoundfontSynth:
    """A SoundFont rendered offline through FluidSynth, deterministically.

    Each render gets a fresh synthesizer (FluidSynth's LFOs, filters and voices keep
    state between notes, and its 16-bit output is dithered), writing floats. One
    synthesizer stays loaded for the object's life, so FluidSynth's sample cache makes
    reloading the file for each render cheap (a 135 MB bank: 0.2 s once, 0.03 s after).
    """

    def __init__(self, path: Path, sample_rate: int) -> None:
        check_not_reserved(path)
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._fluidsynth = _import_fluidsynth()
        self._write = _float_writer(self._fluidsynth)
        self._keeper, self.sfid = self._new_synth()  # holds the sample cache

    def _new_synth(self):
        synth = self._fluidsynth.Synth(gain=0.4, samplerate=float(self.sample_rate))
        # Effects are ours to add per track; FluidSynth's would be the same every time.
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        sfid = synth.sfload(str(self.path))
        if sfid < 0:
            raise ConfigError(f"FluidSynth could not load the SoundFont {self.path}")
        return synth, sfid

    def has_preset(self, bank: int, program: int) -> bool:
        return bool(self._keeper.sfpreset_name(self.sfid, bank, program))

    def render(
        self,
        events: Sequence[tuple[float, float, int, int]],
        n_samples: int,
        *,
        bank: int,
        program: int,
        channel: int = 0,
    ) -> np.ndarray:
        """(start_sec, dur_sec, pitch, velocity) notes -> mono float32 (n_samples,)."""
        synth, sfid = self._new_synth()
        try:
            synth.program_select(channel, sfid, bank, program)
            out = np.zeros((n_samples, 2), np.float32)  # (n, L/R) interleaved
            now = 0
            for sample, is_on, pitch, vel in _timeline(events, self.sample_rate):
                if sample >= n_samples:
                    break
                if sample > now:
                    self._write(synth.synth, out[now:sample])
                    now = sample
                if is_on:
                    synth.noteon(channel, pitch, vel)
                else:
                    synth.noteoff(channel, pitch)
            if n_samples > now:
                self._write(synth.synth, out[now:])
        finally:
            synth.delete()
        return out.mean(axis=1)


def _timeline(
    events: Sequence[tuple[float, float, int, int]], sample_rate: int
) -> list[tuple[int, int, int, int]]:
    """(sample, 1 for on / 0 for off, pitch, velocity), offs before ons at a sample."""
    timeline = []
    for start, dur, pitch, vel in events:
        on = max(0, int(round(start * sample_rate)))
        off = max(on + 1, int(round((start + dur) * sample_rate)))
        timeline += [(on, 1, pitch, vel), (off, 0, pitch, 0)]
    return sorted(timeline)


def _float_writer(fluidsynth):
    """fluid_synth_write_float on an (n, 2) float32 block (pyfluidsynth wraps s16)."""
    fn = fluidsynth._fl.fluid_synth_write_float
    c_int, c_ptr = ctypes.c_int, ctypes.c_void_p
    fn.argtypes = [c_ptr, c_int, c_ptr, c_int, c_int, c_ptr, c_int, c_int]
    fn.restype = ctypes.c_int

    def write(synth_handle: object, block: np.ndarray) -> None:
        addr = block.ctypes.data  # left at offset 0, right at 1, stride 2
        if fn(synth_handle, len(block), addr, 0, 2, addr, 1, 2) != 0:
            raise RuntimeError("FluidSynth failed to render")

    return write


@functools.lru_cache(maxsize=4)
def soundfont_synth(path: Path, sample_rate: int) -> SoundfontSynth:
    """A cached synth per (SoundFont, rate): loading a large bank takes seconds."""
    return SoundfontSynth(Path(path), sample_rate)


# GM drum note per voice (TD-17 voices; toms by GM's high, low-mid and floor toms).
GM_DRUM_NOTE = {
    "kick": 36, "snare": 38, "cross_stick": 37, "rimshot": 40,
    "hh_closed": 42, "hh_closed_edge": 42, "hh_pedal": 44,
    "hh_open": 46, "hh_open_edge": 46,
    "tom_high": 50, "tom_high_rim": 48, "tom_mid": 47, "tom_mid_rim": 45,
    "tom_low": 43, "tom_low_rim": 41,
    "crash1": 49, "crash1_edge": 49, "crash2": 57, "crash2_edge": 57,
    "ride": 51, "ride_edge": 59, "ride_bell": 53,
}  # fmt: skip
DRUM_BANK = 128  # where General MIDI SoundFonts keep their drum kits
N_DRUM_LAYERS = 8  # velocities each voice is rendered at
ONE_SHOT_SEC = 2.5


class SoundfontKit(Kit):
    """A drum kit (bank 128) of a General MIDI SoundFont, played through FluidSynth.

    Every (voice, velocity layer) is rendered once as a one-shot and cached, so the
    shared render places hits sample-exactly, chokes hi-hats and mixes like any kit.
    """

    fade_sec = 0.01

    def __init__(self, path: Path, preset: int = 0) -> None:
        check_not_reserved(path)
        self.path = Path(path)
        self.preset = int(preset)
        self.name = f"sf:{self.path.stem}:{self.preset}"
        size = self.path.stat().st_size
        self.fingerprint = f"sf-v{SYNTH_VERSION}:{self.path.name}:{size}:{self.preset}"
        self.voices = frozenset(GM_DRUM_NOTE)
        self._sounds: dict[tuple[str, int, int], Sound] = {}

    def _one_shot(self, voice: str, layer: int, sample_rate: int) -> Sound:
        key = (voice, layer, sample_rate)
        if key not in self._sounds:
            synth = soundfont_synth(self.path, sample_rate)
            if not synth.has_preset(DRUM_BANK, self.preset):
                raise ConfigError(
                    f"{self.path} has no drum kit at bank {DRUM_BANK}, "
                    f"preset {self.preset}",
                    hint="try preset 0 (sf:NAME:0)",
                )
            velocity = int(round(127 * (layer + 0.5) / N_DRUM_LAYERS))
            n = int(ONE_SHOT_SEC * sample_rate)
            note = (0.0, 0.2, GM_DRUM_NOTE[voice], velocity)
            audio = synth.render(
                [note], n, bank=DRUM_BANK, program=self.preset, channel=9
            )
            peak = float(np.abs(audio).max())
            snd = anchor_sound(audio, sample_rate)
            self._sounds[key] = Sound(snd.audio * peak, snd.onset)
        return self._sounds[key]

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        layer = min(N_DRUM_LAYERS - 1, int(velocity * N_DRUM_LAYERS))
        snd = self._one_shot(voice, layer, sample_rate)
        return Strike(snd, 1.5, voice, *hat_choke(voice))
