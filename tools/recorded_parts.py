"""Recorded bass and guitar for the music pool: songs' parts through SFZ instruments.

Real mixes fire toms on bass notes and hi-hats on guitar strums; training heard bass and
guitar only as SoundFont programs, drumtx's own synthesised voices and the pool's few
real stems. This plays the bass and guitar parts of full-band MIDI songs (``--songs``)
through recorded melodic SFZ instruments (drumtx.synth.sampled: CC0 Karoryfer basses
and guitars, say) and writes the stretches as a music-pool split
(drumtx.music: ``music.i16`` + ``index.json``), after a copy of an existing split
(``--base``) when given, so ``data.music_dir`` can name the result and training crops
hear recorded bass and guitar under the drums, and alone in its drum breaks
(``data.break_prob``).

Each song gives one stretch of ``--seconds`` at a random tempo: its bass part alone,
its guitar parts alone, or both, each through an instrument of its family drawn at
random (an instrument named ``*bass*`` plays bass parts, any other guitar parts; a
distorted part through drumtx's amp sometimes). The songs tools/music_alone.py probes
by default are left out, so that probe stays held out in songs as well as instruments;
``--held-out`` plays only those songs, for a held-out split heard through instruments
never trained on (``evaluate --music-dir``).
Every segment records its song, instruments and their licence.

Usage: python tools/recorded_parts.py --songs ../shared/data/songs
           --instrument swagbass=/work/inst/swagbass/swagbass_clean.sfz ...
           --licence CC0-1.0 --base /work/music/train --out /work/music-parts/train
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from music_alone import (  # noqa: E402
    FAMILY,
    MIN_NOTES,
    family_of,
    find_songs,
    named_path,
    probe_songs,
)

from drumtx.cli import print_error  # noqa: E402
from drumtx.errors import ConfigError, DrumtxError  # noqa: E402
from drumtx.levels import rms_db  # noqa: E402
from drumtx.music import (  # noqa: E402
    AUDIO_NAME,
    INDEX_NAME,
    MusicPool,
    PoolWriter,
    load_music_pool,
)
from drumtx.synth import instruments as inst  # noqa: E402
from drumtx.synth.backing import notes_in_seconds, song_arrangement  # noqa: E402
from drumtx.synth.sampled import SampledInstrument  # noqa: E402
from drumtx.tempo import TempoMap  # noqa: E402

SAMPLE_RATE = 24_000
LEVEL_DB = -20.0  # each stretch's RMS in the pool (the loader sets the mix level)
AMP_PROB = 0.5  # distorted parts through drumtx's amp and cabinet
LINEUPS = ("bass", "guitar", "both")


def render_stretch(
    song: Path,
    instruments: dict[str, SampledInstrument],
    seconds: float,
    rng: np.random.Generator,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, dict] | None:
    """One stretch of ``song``'s bass and/or guitar parts through recorded instruments:
    (audio at LEVEL_DB, what played), or None when the stretch has too few notes."""
    n = int(seconds * sample_rate)
    tempo_map = TempoMap.constant(float(rng.uniform(80.0, 160.0)))
    lineup = LINEUPS[int(rng.integers(len(LINEUPS)))]
    chosen = {}
    for family in ("bass", "guitar"):
        names = [k for k in instruments if family_of(k) == family]
        if names:
            chosen[family] = names[int(rng.integers(len(names)))]
    mix = np.zeros(n, np.float32)
    played: list[str] = []
    for part in song_arrangement(song, tempo_map, seconds, rng):
        family = FAMILY.get(part.role)
        if family is None or family not in chosen or lineup not in (family, "both"):
            continue
        notes = notes_in_seconds(part, tempo_map)
        if len(notes) < MIN_NOTES:
            continue
        audio = instruments[chosen[family]].render(notes, n, sample_rate, rng)
        if part.role == "distorted" and rng.random() < AMP_PROB:
            audio = inst.EFFECTS["amp"](audio, sample_rate, rng)
        level = rms_db(audio)
        if level < -80:
            continue
        gain = float(rng.uniform(-6.0, 0.0)) - level  # parts balanced within 6 dB
        mix += audio * np.float32(10 ** (gain / 20))
        played.append(f"{part.role}:{chosen[family]}")
    if not played:
        return None
    mix *= np.float32(10 ** ((LEVEL_DB - rms_db(mix)) / 20))
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= np.float32(0.99 / peak)
    bpm = round(tempo_map.bpm_at(0.0), 1)
    return mix, {"lineup": lineup, "parts": played, "bpm": bpm}


def copy_base(pool: MusicPool, writer: PoolWriter) -> int:
    """Append every segment of an existing split to ``writer``; returns its samples."""
    for seg in pool.segments:
        start, length = int(seg["start"]), int(seg["length"])
        audio = np.asarray(pool.audio[start : start + length], np.float32) / 32768.0
        meta = {k: v for k, v in seg.items() if k not in ("start", "length")}
        writer.add(audio, meta)
    return len(pool.audio)


def run(args: argparse.Namespace) -> dict:
    songs = find_songs(args.songs)
    held = set(probe_songs(songs, args.probe_songs)) if args.probe_songs else set()
    if args.held_out:  # the probe's songs only: a held-out split for evaluate
        songs = [s for s in songs if s in held]
    else:
        songs = [s for s in songs if s not in held]
    instruments = {name: SampledInstrument(path) for name, path in args.instrument}
    rate = args.sample_rate
    base = load_music_pool(args.base, rate) if args.base else None
    writer = PoolWriter(args.out, rate)  # only once every input has been read
    try:
        base_samples = copy_base(base, writer) if base else 0
        rng = np.random.default_rng(args.seed)
        kept = 0
        for repeat in range(args.passes):
            for song in songs:
                result = render_stretch(song, instruments, args.seconds, rng, rate)
                if result is None:
                    continue
                audio, played = result
                writer.add(audio, {
                    "file": f"{song.name}#{repeat}", "source": "recorded-parts",
                    "package": "sfz:" + ",".join(sorted({p.split(":")[1] for p in
                                                         played["parts"]})),
                    "licence": args.licence, **played})  # fmt: skip
                kept += 1
    finally:
        writer.close()
    return {"base_hours": base_samples / rate / 3600,
            "parts_hours": kept * args.seconds / 3600, "stretches": kept,
            "songs": len(songs), "held_out_songs": len(held)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=Path, required=True)
    parser.add_argument("--instrument", nargs="+", type=named_path, required=True,
                        metavar="NAME=SFZ", help="recorded melodic SFZ instruments")
    parser.add_argument("--licence", required=True,
                        help="the instruments' licence, recorded in every segment")
    parser.add_argument("--out", type=Path, required=True, help="the split to write")
    parser.add_argument("--base", type=Path, default=None,
                        help="an existing pool split copied in first")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--passes", type=int, default=1,
                        help="stretches per song (each pass draws afresh)")
    parser.add_argument("--probe-songs", type=int, default=24,
                        help="leave out music_alone.py's first N songs (0: none)")
    parser.add_argument("--held-out", action="store_true",
                        help="play only those songs: a held-out split for evaluate "
                             "--music-dir (with instruments never trained on)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                        help="Hz of the split (the model's audio.sample_rate; a "
                        "--base split must have it too)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)  # fmt: skip
    if args.seconds <= 0 or args.passes < 1 or args.probe_songs < 0:
        parser.error("--seconds and --passes must be positive, --probe-songs >= 0")
    if args.held_out and not args.probe_songs:
        parser.error("--held-out plays the --probe-songs: give it a positive count")
    try:
        out = args.out.resolve()
        if args.base and args.base.resolve() == out:
            raise ConfigError(
                "--out is the --base split itself",
                hint="write the combined split somewhere new",
            )
        if (out / INDEX_NAME).exists() or (out / AUDIO_NAME).exists():
            if not args.overwrite:
                raise ConfigError(f"{out} already holds a pool split",
                                  hint="pass --overwrite, or a new --out")  # fmt: skip
            for name in (INDEX_NAME, AUDIO_NAME):  # the split only, not the folder
                (out / name).unlink(missing_ok=True)
        summary = run(args)
    except DrumtxError as exc:
        print_error(exc)
        return 1
    print(f"wrote {args.out}: {summary['stretches']} stretches of recorded parts "
          f"({summary['parts_hours']:.2f} h) from {summary['songs']} songs "
          f"({summary['held_out_songs']} are music_alone.py's"
          f"{': only those' if args.held_out else ', left out'})"
          + (f" after the base split's {summary['base_hours']:.2f} h" if args.base
             else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
