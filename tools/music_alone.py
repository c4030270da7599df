"""Drums a model hears where there are none: hits per minute fired on music alone.

Real songs have intros, breaks and outros where the band plays without the drums; every
hit found there is a false one. Two kinds of drum-free audio, each scored as transcribe
would hear a file (brought to the trained input level, the model's thresholds):

- ``--pool DIR``: a split of the real-music pool (tools/build_music_pool.py: guitar
  stems, game music, speech, screened for percussion), each stretch as one recording.
- ``--instrument NAME=SFZ``: the bass and guitar parts of full-band MIDI songs
  (``--songs``; up to ``--max-songs`` of them, ``--seconds`` each, 120 BPM) played
  through recorded melodic SFZ instruments (drumtx.synth.sampled: a DI bass, an upright
  bass, an electric guitar), beside the same parts through drumtx's own synthesised
  bass and guitar voices (``own:bass``, ``own:pluck``). Parts go to an instrument by
  role: an instrument named ``*bass*`` plays bass parts, any other the guitar parts.

Several ``--checkpoint NAME=PATH`` are scored on the same audio, side by side. Each
model hears it at its own audio.sample_rate: the parts are rendered at each model's
rate, and a model reads the ``--pool`` split at its rate (give one split per rate, the
same pool resampled by tools/build_music_pool.py --resample-from); one at a rate no
split has is refused. Prints hits per minute per source and the classes fired most;
``--json`` keeps the counts.

Usage: python tools/music_alone.py --checkpoint shipped=drumtx/models/default.pt
           [--pool /work/music/test [/work/music48/test]] [--songs ../shared/data/songs
           --instrument growlybass=/work/inst/growlybass/growlybass_clean.sfz ...]
           [--max-songs 24] [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from drumtx.checkpoint import SHIPPED_MODELS_DIR
from drumtx.cli import print_error
from drumtx.config import load_config
from drumtx.errors import ConfigError, DataError, DrumtxError
from drumtx.evaluate import hits_by_class
from drumtx.inference import LoadedModel, load_model, resolve_device
from drumtx.levels import rms_db
from drumtx.music import load_music_pool
from drumtx.synth import instruments as inst
from drumtx.synth.backing import notes_in_seconds, song_arrangement
from drumtx.synth.sampled import SampledInstrument
from drumtx.tempo import TempoMap

PART_LEVEL_DB = -20.0  # each rendered part's RMS before the model's own input level
MIN_NOTES = 8  # parts with fewer notes in the stretch are skipped
OWN_VOICE = {"bass": "bass", "guitar": "pluck"}  # drumtx's own voices, by family
FAMILY = {"bass": "bass", "guitar": "guitar", "distorted": "guitar"}  # part roles


def pool_sources(
    split_dir: Path, sample_rate: int
) -> Iterator[tuple[str, np.ndarray]]:
    """(source, audio) for every stretch of a music-pool split at ``sample_rate``."""
    pool = load_music_pool(split_dir, sample_rate)
    for seg in pool.segments:
        start, length = int(seg["start"]), int(seg["length"])
        audio = np.asarray(pool.audio[start : start + length], np.float32) / 32768.0
        yield f"pool:{seg.get('source', '?')}", audio


def pool_at(split_dirs: list[Path], sample_rate: int, model: str) -> Path:
    """The ``--pool`` split at ``sample_rate`` (``model``'s rate: a model fed audio at
    another rate hears it at the wrong pitch and speed); refused where none is."""
    rates: dict[Path, int] = {}
    for split_dir in split_dirs:
        rates[split_dir] = load_music_pool(split_dir).sample_rate
        if rates[split_dir] == sample_rate:
            return split_dir
    held = ", ".join(f"{d} at {r} Hz" for d, r in rates.items())
    first = split_dirs[0]
    raise DataError(
        f"--checkpoint {model} takes {sample_rate} Hz audio; no --pool split is at "
        f"that rate ({held})",
        hint=f"python tools/build_music_pool.py --out NEW --resample-from "
        f"{first.parent} --scratch SCRATCH --sample-rate {sample_rate}, then add "
        f"NEW/{first.name} to --pool",
    )


def family_of(name: str) -> str:
    return "bass" if "bass" in name.lower() else "guitar"


def find_songs(folder: Path) -> list[Path]:
    """The .mid/.midi files under ``folder``, sorted; refuses a folder without any."""
    midi = (".mid", ".midi")
    songs = sorted(p for p in folder.rglob("*") if p.suffix.lower() in midi)
    if not songs:
        raise ConfigError(
            f"--songs: no MIDI songs under {folder}",
            hint="point --songs at a folder of full-band .mid files",
        )
    return songs


def probe_songs(songs: list[Path], max_songs: int) -> list[Path]:
    """The songs the probe plays: up to ``max_songs`` spread evenly over the sorted list
    (tools/recorded_parts.py leaves these out of training)."""
    step = max(1, len(songs) // max_songs)
    return songs[::step][:max_songs]


def instrument_sources(
    songs: list[Path],
    instruments: dict[str, SampledInstrument],
    seconds: float,
    sample_rate: int,
) -> Iterator[tuple[str, np.ndarray]]:
    """(source, audio) for each bass or guitar part of each song, through every
    instrument of its family and drumtx's own voice for it, at ``sample_rate``."""
    n = int(seconds * sample_rate)
    tempo_map = TempoMap.constant(120.0)
    for index, song in enumerate(songs):
        rng = np.random.default_rng(index)
        for part in song_arrangement(song, tempo_map, seconds, rng):
            family = FAMILY.get(part.role)
            notes = notes_in_seconds(part, tempo_map)
            if family is None or len(notes) < MIN_NOTES:
                continue
            for name, instrument in instruments.items():
                if family_of(name) == family:
                    audio = instrument.render(notes, n, sample_rate, rng)
                    yield f"{family} {name}", audio
            voice = OWN_VOICE[family]
            patch = inst.draw_patch(voice, rng)
            own = inst.render_notes(notes, voice, patch, n, sample_rate, rng)
            yield f"{family} own:{voice}", own


def run(args: argparse.Namespace) -> dict[str, dict[str, dict]]:
    """{model: {source: {"minutes": m, "hits": {class: n}}}}; the models of each
    audio.sample_rate hear the sources played at that rate."""
    cfg = load_config(args.config) if args.config else load_config()
    models = {
        name: load_model(path, cfg, resolve_device("cpu"))
        for name, path in args.checkpoint
    }
    by_rate: dict[int, dict[str, LoadedModel]] = {}
    for name, loaded in models.items():
        by_rate.setdefault(loaded.cfg.audio.sample_rate, {})[name] = loaded
    pools = {rate: pool_at(args.pool, rate, next(iter(at_rate)))
             for rate, at_rate in by_rate.items()} if args.pool else {}  # fmt: skip
    if args.instrument:
        songs = probe_songs(find_songs(args.songs), args.max_songs)
        instruments = {name: SampledInstrument(path) for name, path in args.instrument}
    table: dict[str, dict[str, dict]] = {name: {} for name in models}
    for rate, at_rate in by_rate.items():
        sources: list[Iterator[tuple[str, np.ndarray]]] = []
        if args.pool:
            sources.append(pool_sources(pools[rate], rate))
        if args.instrument:
            sources.append(instrument_sources(songs, instruments, args.seconds, rate))
        for source_iter in sources:
            for source, audio in source_iter:
                level = rms_db(audio)
                if level < -80:
                    continue
                if source.split(" ")[0] in FAMILY:  # a rendered part: a plausible level
                    audio = audio * np.float32(10 ** ((PART_LEVEL_DB - level) / 20))
                for name, loaded in at_rate.items():
                    row = table[name].setdefault(source, {"minutes": 0.0, "hits": {}})
                    row["minutes"] += len(audio) / rate / 60
                    for code, n in hits_by_class(loaded, audio).items():
                        row["hits"][code] = row["hits"].get(code, 0) + n
    return table


def summary(row: dict) -> str:
    minutes, hits = row["minutes"], row["hits"]
    top = sorted(hits.items(), key=lambda kv: -kv[1])[:4]
    rate = sum(hits.values()) / max(minutes, 1e-9)
    return f"{rate:6.1f}/min  " + " ".join(f"{c} {n / minutes:.1f}" for c, n in top)


def print_table(table: dict[str, dict[str, dict]]) -> None:
    names = list(table)
    sources = sorted({s for rows in table.values() for s in rows})
    width = max(len(s) for s in sources) if sources else 6
    print(f"hits per minute on music without drums ({', '.join(names)})")
    for source in [*sources, "all pool"]:
        if source == "all pool":
            pooled = [s for s in sources if s.startswith("pool:")]
            if not pooled:
                continue
        cells = []
        for name in names:
            rows = table[name]
            if source == "all pool":
                row = {"minutes": sum(rows[s]["minutes"] for s in pooled), "hits": {}}
                for s in pooled:
                    for c, n in rows[s]["hits"].items():
                        row["hits"][c] = row["hits"].get(c, 0) + n
            else:
                row = rows[source]
            cells.append(summary(row))
        minutes = row["minutes"]
        print(f"{source:{width}s} {minutes:5.1f} min | " + " | ".join(cells))


def named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="+", type=named_path, metavar="NAME=PATH",
                        default=[("shipped", SHIPPED_MODELS_DIR / "default.pt")])
    parser.add_argument("--pool", nargs="+", type=Path, default=[],
                        help="a music-pool split, e.g. /work/music/test; models at "
                        "several rates need one split at each rate")
    parser.add_argument("--songs", type=Path, default=None,
                        help="full-band MIDI songs whose bass and guitar parts play")
    parser.add_argument("--instrument", nargs="+", type=named_path, default=[],
                        metavar="NAME=SFZ", help="recorded melodic SFZ instruments")
    parser.add_argument("--max-songs", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="of each song, from a random bar")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the counts")
    args = parser.parse_args(argv)  # fmt: skip
    if not args.pool and not args.instrument:
        parser.error("give --pool, or --instrument with --songs (or both)")
    if args.instrument and not args.songs:
        parser.error("--instrument needs --songs (the parts they play)")
    if args.max_songs < 1 or args.seconds <= 0:
        parser.error("--max-songs and --seconds must be positive")
    try:
        table = run(args)
    except DrumtxError as exc:
        print_error(exc)
        return 1
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
