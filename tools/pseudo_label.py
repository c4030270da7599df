"""Pseudo-label real music with drums for self-training (drumtx.pseudo), into a root.

    apt-get update
    nice python tools/pseudo_label.py --root /data/dm/train-root --scratch /tmp/pseudo

Downloads Debian's open game soundtracks that have a drum kit in them (``apt-get
download``, unpacked with ``dpkg-deb -x``; nothing is installed), transcribes every
track with a teacher (the shipped model unless ``--checkpoint``), averaged over the
track and two spectrally tilted copies, keeps the spans where the teacher hears steady
time-keeping (kick, snare, hi-hat, ride), cuts them into pieces of at most 45 s and
adds each piece to an E-GMD-shaped root made by ``make-dataset`` as one more training
recording: ``pseudo/<source>/<name>.wav`` (mono at the teacher's audio.sample_rate,
24 kHz for the shipped model), ``.midi`` (the teacher's confident hits) and
``.unsure.json`` (the peaks it was unsure of, which preprocess stores so that training
leaves them out of the loss), a ``train`` row of the CSV with kit ``pseudo:<source>``
(preprocess gives these no backing track: they are songs).
Run it after ``make-dataset`` (which rewrites the CSV) and before ``preprocess``.

Every package is in Debian main, so its data is DFSG-free; the licence of each track
is read from the package's debian/copyright where it names the file, and
``<root>/pseudo/manifest.{json,md}`` lists every source with its licence, attribution,
hours screened and hours kept. Nothing it writes belongs in the repository.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_music_pool import Source, licence_of, source_files, unpack  # noqa: E402

from drumtx import egmd, midi  # noqa: E402
from drumtx.audio import load_audio  # noqa: E402
from drumtx.cli import print_error  # noqa: E402
from drumtx.config import load_config  # noqa: E402
from drumtx.drums import Hit  # noqa: E402
from drumtx.errors import DataError  # noqa: E402
from drumtx.inference import (  # noqa: E402
    array_activations,
    class_thresholds,
    load_model,
)
from drumtx.music import load_music_pool  # noqa: E402
from drumtx.pseudo import (  # noqa: E402
    LabelRule,
    PseudoLabels,
    drum_spans,
    ensemble,
    label,
    pieces,
    tilt_views,
)
from drumtx.storage import atomic_write_bytes  # noqa: E402

PSEUDO_DRUMMER = "pseudo"
MAX_PIECE_SEC, MIN_PIECE_SEC = 45.0, 10.0
FOF = "usr/share/games/fretsonfire/data/songs/*/*/song.ogg"
DFSG = "DFSG-free (Debian main)"
SOURCES = (
    Source("nexuiz", "nexuiz-music", "drums", ("sound/cdtracks/*.ogg",),
           archive="usr/share/games/nexuiz/data/music.pk3",
           attribution="the Nexuiz project (Alientrap) and its musicians"),
    Source("naev", "naev-data", "drums", ("usr/share/naev/dat/snd/music/*.ogg",),
           strip="usr/share/naev/"),
    Source("hedgewars", "hedgewars-data", "drums",
           ("usr/share/games/hedgewars/Data/Music/*.ogg",),
           strip="usr/share/games/hedgewars/"),
    Source("supertux", "supertux-data", "drums",
           ("usr/share/games/supertux2/music/**/*.ogg",),
           strip="usr/share/games/supertux2/"),
    Source("supertuxkart", "supertuxkart-data", "drums",
           ("usr/share/games/supertuxkart/data/music/*.ogg",),
           strip="usr/share/games/supertuxkart/"),
    Source("redeclipse", "redeclipse-data", "drums",
           ("usr/share/games/redeclipse/data/sounds/music/*.ogg",),
           strip="usr/share/games/redeclipse/"),
    Source("openclonk", "openclonk-data", "drums",
           ("usr/share/games/openclonk/Music.ocg/*.ogg",),
           strip="usr/share/games/openclonk/"),
    Source("fof-muldjord", "fretsonfire-songs-muldjord", "drums", (FOF,),
           licence="CC-BY-SA-3.0", evidence="Attribution ShareAlike licence 3.0",
           attribution="El Senator (Muldjord), muldjord.com",
           note="song.ogg: the band without the lead guitar"),
    Source("fof-sectoid", "fretsonfire-songs-sectoid", "drums", (FOF,),
           licence="Expat", evidence="Permission is hereby granted, free of charge",
           attribution="Carlos Viola Iborra (Sectoid)",
           note="song.ogg: the band without the lead guitar"),
)  # fmt: skip


@dataclass
class Teacher:
    loaded: object  # drumtx.inference.LoadedModel
    thresholds: list[float]
    rule: LabelRule

    n_views: int = 3
    key: str = "teacher"  # names the label cache: checkpoint, views, rule

    @property
    def sample_rate(self) -> int:
        """The teacher's audio rate: tracks are decoded, heard and cut at it."""
        return self.loaded.cfg.audio.sample_rate

    def labels(self, audio: np.ndarray):
        """The teacher's labels of a whole track (model rate), views averaged."""
        acts = [
            array_activations(self.loaded, view)
            for view in tilt_views(audio, self.sample_rate)[: self.n_views]
        ]
        onset, velocity = ensemble(acts)
        fps = self.loaded.cfg.frontend.fps
        codes = self.loaded.vocab.codes
        return label(onset, velocity, fps, self.thresholds, self.rule, codes)


def cached_labels(path: Path, compute) -> PseudoLabels:
    """A track's labels from ``path`` when an earlier run wrote them, else computed
    and written: rerunning after make-dataset (which rewrites the CSV) is cheap."""
    if path.is_file():
        data = json.loads(path.read_text())
        return PseudoLabels(*([Hit(*h) for h in data[k]] for k in ("hits", "unsure")))
    labels = compute()
    data = {k: [[h.time_sec, h.cls, h.velocity] for h in getattr(labels, k)]
            for k in ("hits", "unsure")}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data).encode())
    return labels


def shifted(hits: list[Hit], start: float, end: float) -> list[Hit]:
    return [
        Hit(h.time_sec - start, h.cls, h.velocity)
        for h in hits
        if start <= h.time_sec < end
    ]


def write_piece(
    egmd_dir: Path,
    stem: str,
    audio: np.ndarray,
    sample_rate: int,
    labels,
    span,
    codes,
    gm_notes,
) -> float:
    """WAV, MIDI and unsure list of one piece of ``audio`` (at ``sample_rate``);
    returns its duration in seconds."""
    start, end = span
    clip = audio[round(start * sample_rate) : round(end * sample_rate)]
    wav = egmd_dir / f"{stem}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, clip, sample_rate, subtype="PCM_16")
    hits = shifted(labels.hits, start, end)
    notes = [midi.Note(h.time_sec, gm_notes[h.cls], h.velocity) for h in hits]
    atomic_write_bytes(egmd_dir / f"{stem}.midi", midi.midi_bytes(notes, bpm=120.0))
    unsure = [[round(h.time_sec, 4), codes[h.cls]]
              for h in shifted(labels.unsure, start, end)]  # fmt: skip
    text = json.dumps({"unsure": unsure}, separators=(",", ":")) + "\n"
    atomic_write_bytes(egmd_dir / f"{stem}.unsure.json", text.encode())
    return len(clip) / sample_rate


def record_of(
    source: Source, stem: str, number: int, duration: float
) -> egmd.EgmdRecord:
    session = f"{PSEUDO_DRUMMER}/{source.name}"
    return egmd.EgmdRecord(
        drummer=PSEUDO_DRUMMER, session=session, id=f"{session}/{number}",
        style="real/song", bpm=120, beat_type="beat", time_signature="4-4",
        duration=round(duration, 6), split="train", midi_filename=f"{stem}.midi",
        audio_filename=f"{stem}.wav", kit_name=f"pseudo:{source.name}",
    )  # fmt: skip


def label_source(
    source: Source, args, teacher: Teacher, egmd_dir: Path, held: set[tuple[str, str]]
) -> dict:
    """Every track of one source -> pieces in the root; the source's manifest entry.
    Tracks in a ``held`` (package, folder) are skipped (held_out_folders)."""
    root = unpack(source.package, args.scratch)
    copyright_text = _copyright(root, source.package)
    vocab = teacher.loaded.vocab
    entry = {"source": source.name, "package": source.package, "tracks": [],
             "screened_h": 0.0, "kept_h": 0.0, "records": []}  # fmt: skip
    files = list(enumerate(source_files(source, root, args.scratch)))
    files = [(n, (rel, path)) for n, (rel, path) in files
             if (source.package, str(Path(rel).parent)) not in held]  # fmt: skip
    order = np.random.default_rng(list(source.name.encode())).permutation(len(files))
    budget_sec = args.max_minutes * 60 if args.max_minutes else float("inf")
    for number, (rel, path) in (files[i] for i in order):
        if entry["screened_h"] * 3600 >= budget_sec:
            break
        licence, holder = licence_of(source, copyright_text, rel)
        audio = load_audio(path, teacher.sample_rate)  # as the teacher hears it
        track = hashlib.sha256(rel.encode()).hexdigest()[:16]  # the file, not its place
        cache = args.scratch / "labels" / teacher.key / source.name / f"{track}.json"
        labels = cached_labels(cache, functools.partial(teacher.labels, audio))
        duration = len(audio) / teacher.sample_rate
        spans = pieces(drum_spans(labels.hits, vocab.codes, duration),
                       MAX_PIECE_SEC, MIN_PIECE_SEC)  # fmt: skip
        kept = 0.0
        for k, span in enumerate(spans):
            stem = f"{PSEUDO_DRUMMER}/{source.name}/{number:03d}_{k:02d}"
            secs = write_piece(egmd_dir, stem, audio, teacher.sample_rate, labels,
                               span, vocab.codes, vocab.gm_notes)  # fmt: skip
            entry["records"].append(record_of(source, stem, number * 100 + k, secs))
            kept += secs
        entry["tracks"].append({"file": rel, "licence": licence or DFSG,
                                "attribution": holder or source.attribution,
                                "sec": round(duration, 1), "kept_sec": round(kept, 1),
                                "hits": len(labels.hits),
                                "unsure": len(labels.unsure)})  # fmt: skip
        entry["screened_h"] += duration / 3600
        entry["kept_h"] += kept / 3600
        print(f"{source.name} {rel}: {duration:.0f} s, kept {kept:.0f} s, "
              f"{len(labels.hits)} hits, {len(labels.unsure)} unsure", flush=True)
    return entry


def held_out_folders(music: Path | None) -> set[tuple[str, str]]:
    """(package, folder) of the music pool's held-out files (build_music_pool.py): a
    Frets on Fire song whose guitar stem is held out as backing must not be trained on
    as a whole song either, or evaluation would hear a guitar part the student learnt.
    Raises drumtx's DataError where ``music`` holds no pool."""
    if music is None:
        return set()
    segments = load_music_pool(music / "test").segments
    return {(s["package"], str(Path(s["file"]).parent)) for s in segments}


def _copyright(root: Path, package: str) -> str:
    path = root / "usr/share/doc" / package / "copyright"
    return path.read_text(errors="replace") if path.is_file() else ""


def merge_csv(
    egmd_dir: Path, records: list[egmd.EgmdRecord], sources: list[str]
) -> int:
    """The root's CSV with the pseudo rows of ``sources`` replaced by ``records``
    (other sources' rows stay); returns how many other rows it keeps."""
    csv_path = egmd.egmd_csv_path(egmd_dir)
    redone = {f"{PSEUDO_DRUMMER}/{name}" for name in sources}
    rows = [r for r in egmd.read_egmd_csv(csv_path) if r.session not in redone]
    egmd.write_egmd_csv(csv_path, rows + records)
    return len(rows)


def write_manifest(egmd_dir: Path, entries: list[dict], teacher: str) -> None:
    out = egmd_dir / PSEUDO_DRUMMER
    public = [{k: v for k, v in e.items() if k != "records"} for e in entries]
    if (out / "manifest.json").is_file():  # an earlier run's other sources stay
        names = {e["source"] for e in public}
        earlier = json.loads((out / "manifest.json").read_text())["sources"]
        public = [e for e in earlier if e["source"] not in names] + public
    manifest = {"teacher": teacher, "sources": public}
    atomic_write_bytes(
        out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode()
    )
    lines = ["# Pseudo-labelled real music (self-training)", "",
             f"Teacher: {teacher}", "",
             "| source | package | licences | tracks | screened h | kept h |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for e in public:
        licences = sorted({t["licence"] for t in e["tracks"]})
        lines.append(f"| {e['source']} | {e['package']} | {', '.join(licences)} | "
                     f"{len(e['tracks'])} | {e['screened_h']:.2f} | "
                     f"{e['kept_h']:.2f} |")
    atomic_write_bytes(out / "manifest.md", ("\n".join(lines) + "\n").encode())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="a make-dataset data root")
    p.add_argument("--scratch", type=Path, required=True, help="downloads, unpacking")
    p.add_argument("--checkpoint", type=Path, help="teacher (default: shipped model)")
    p.add_argument("--sources", help="redo only these (other sources' pieces stay), "
                   "comma-separated, of: "
                   + ",".join(s.name for s in SOURCES))  # fmt: skip
    p.add_argument("--music", type=Path, help="the real-music pool whose held-out "
                   "split evaluation mixes in: songs in its held-out folders are "
                   "skipped")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--views", type=int, default=3, choices=(1, 2, 3),
                   help="teacher views averaged: the track, brighter, darker")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="screen at most this much of each source (tracks in a fixed "
                   "random order); 0 = all")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from drumtx.checkpoint import SHIPPED_MODELS_DIR

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    egmd_dir = args.root / "e-gmd-v1.0.0"
    if not egmd.egmd_csv_path(egmd_dir).is_file():
        print(
            f"error: {egmd_dir} has no CSV\nhint: run make-dataset first",
            file=sys.stderr,
        )
        return 2
    try:
        held = held_out_folders(args.music)  # before any download or labelling
    except DataError as exc:
        print_error(exc)
        return 2
    checkpoint = args.checkpoint or SHIPPED_MODELS_DIR / "default.pt"
    loaded = load_model(checkpoint, load_config(None), torch.device("cpu"))
    rule = LabelRule()
    digest = hashlib.sha256(checkpoint.read_bytes())
    digest.update(f"{args.views}|{rule}".encode())
    teacher = Teacher(loaded, class_thresholds(loaded), rule, args.views,
                      digest.hexdigest()[:12])  # fmt: skip
    wanted = set(args.sources.split(",")) if args.sources else None
    t0, entries = time.monotonic(), []
    for source in SOURCES:
        if wanted is None or source.name in wanted:
            entries.append(label_source(source, args, teacher, egmd_dir, held))
    records = [r for e in entries for r in e["records"]]
    n_rows = merge_csv(egmd_dir, records, [e["source"] for e in entries])
    write_manifest(egmd_dir, entries, str(checkpoint))
    kept = sum(e["kept_h"] for e in entries)
    print(f"added {len(records)} pseudo-labelled recordings ({kept:.2f} h) to "
          f"{n_rows} rendered ones in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
