"""Build the real-music pool (drumtx.music) from Debian packages: non-drum audio that
training crops and held-out evaluation hear under the drums.

    apt-get update
    nice python tools/build_music_pool.py --out /work/music --scratch /tmp/music-debs

Downloads each package with ``apt-get download`` and unpacks it with ``dpkg-deb -x``
into the scratch directory (nothing is installed), reads the licence of every file
from the package's debian/copyright and keeps only free ones, decodes the audio to
mono at the model's rate, screens every 10-s excerpt for a drum kit (drumtx.screen,
with the shipped model) and drops those with one, splits each source into train and
held-out files by a hash of the file's name (files an earlier pool placed keep their
split: tools/music_pool_splits.json, ``--splits``), and writes <out>/{train,test}/
(music.i16, index.json), <out>/splits.json (each kept file's split) and
<out>/manifest.{json,md}: every source with its licence, attribution and hours kept
and refused. ``--calibrate N`` then mixes rendered grooves into N kept
excerpts per source and reports how many the screen refuses. Nothing it writes belongs
in the repository.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drumtx.audio import load_audio  # noqa: E402
from drumtx.checkpoint import SHIPPED_MODELS_DIR  # noqa: E402
from drumtx.cli import print_error  # noqa: E402
from drumtx.errors import DataError, DrumtxError  # noqa: E402
from drumtx.levels import mix_backing, rms_db  # noqa: E402
from drumtx.music import (  # noqa: E402
    INDEX_NAME,
    SPLITS,
    PoolWriter,
    assign_splits,
    hash_unit,
    load_music_pool,
)
from drumtx.screen import (  # noqa: E402
    EXCERPT_SEC,
    SCREEN_VERSION,
    ExcerptScore,
    excerpt_bounds,
    keep_mask,
    screen_audio,
)

SAMPLE_RATE = 24000
SHIPPED = SHIPPED_MODELS_DIR / "default.pt"  # the default screening model
# The split of every file the pool of 2026-12-06 kept (its splits.json): a rebuild
# screened by other weights keeps other files, and the hash rule's "lowest to test,
# highest to train" would then move some across; pinned, they stay where they were.
PINNED_SPLITS = Path(__file__).with_name("music_pool_splits.json")
SPLIT_LIST_FORMAT = 1
SILENT_DB = -50.0  # excerpts quieter than this hold nothing to mix
BATCH_SEC = 30.0  # files shorter than this are screened end to end in batches
PEAK = 0.9  # every kept file is peak-normalised (mixing sets the level anyway)
# Licences kept: free for any use with attribution at most (no NC, no ND).
FREE_LICENCE = re.compile(
    r"^(CC0(-[0-9.]+)?|CC-BY(-SA)?-[0-9.]+|L?GPL-[0-9.]+\+?|BSD.*|MIT|Expat"
    r"|public-domain)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Source:
    """One kind of audio from one package; ``licence`` where the copyright file is not
    machine-readable (then ``evidence`` must appear in it, or the source is refused)."""

    name: str
    package: str
    kind: str  # guitar | orchestral | speech
    patterns: tuple[str, ...]  # globs under the unpacked package (or in ``archive``)
    archive: str = ""  # a zip (.pk3) inside the package holding the audio
    strip: str = ""  # installed path -> debian/copyright's path: drop this prefix
    archive_prefix: str = ""  # ... and add this one to archive members
    licence: str = ""
    evidence: str = ""
    attribution: str = ""  # where the copyright file is not machine-readable
    note: str = ""


FOF = "usr/share/games/fretsonfire/data/songs/*/*/"
SOURCES = (
    Source("muldjord-guitar", "fretsonfire-songs-muldjord", "guitar",
           (FOF + "guitar.ogg", FOF + "rhythm.ogg"), licence="CC-BY-SA-3.0",
           evidence="Attribution ShareAlike licence 3.0",
           attribution="El Senator (Muldjord), muldjord.com",
           note="isolated guitar stems; song.ogg (the full mix) is not used"),
    Source("sectoid-guitar", "fretsonfire-songs-sectoid", "guitar",
           (FOF + "guitar.ogg", FOF + "rhythm.ogg"), licence="Expat",
           evidence="Permission is hereby granted, free of charge",
           attribution="Carlos Viola Iborra (Sectoid)",
           note="isolated guitar stems; song.ogg (the full mix) is not used"),
    Source("wesnoth-music", "wesnoth-1.16-music", "orchestral",
           ("usr/share/games/wesnoth/1.16/data/core/music/*.ogg",), licence="GPL-2+",
           evidence="GNU General Public License version 2",
           attribution="The Battle for Wesnoth project (David White et al.)"),
    Source("ufoai-music", "ufoai-music", "orchestral", ("music/*.ogg",),
           archive="usr/share/games/ufoai/base/0music.pk3",
           archive_prefix="base/"),
    Source("unknown-horizons-music", "unknown-horizons", "orchestral",
           ("usr/share/unknown-horizons/content/audio/music/**/*.ogg",),
           strip="usr/share/unknown-horizons/"),
    Source("unknown-horizons-voice", "unknown-horizons", "speech",
           ("usr/share/unknown-horizons/content/audio/voice/**/*.ogg",),
           strip="usr/share/unknown-horizons/"),
    Source("widelands-music", "widelands-data", "orchestral",
           ("usr/share/games/widelands/data/music/*.ogg",),
           strip="usr/share/games/widelands/"),
    Source("festvox-ru-speech", "festvox-ru", "speech",
           ("usr/share/festival/voices/russian/*/wav/*.wav",),
           note="recorded utterances of one Russian speaker"),
    Source("klettres-speech", "klettres-data", "speech",
           ("usr/share/klettres/**/*.ogg",),
           note="spoken letters and syllables, many languages"),
)  # fmt: skip


@dataclass
class Tally:
    """Seconds of one source, by what became of them."""

    files: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kept_sec: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    refused_sec: float = 0.0  # the screen found drums (or a drum neighbour)
    silent_sec: float = 0.0
    refused_files: list[str] = field(default_factory=list)  # refused whole
    pinned_files: int = 0  # kept files whose split came from the pinned list
    licences: set[str] = field(default_factory=set)


# --- packages and licences -----------------------------------------------------------


def unpack(package: str, scratch: Path) -> Path:
    """The package's files under scratch/root/PACKAGE (downloaded and unpacked once)."""
    debs, root = scratch / "debs", scratch / "root" / package
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    if not (root / ".unpacked").exists():
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        root.mkdir(parents=True, exist_ok=True)  # dpkg-deb -x makes no parents
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        (root / ".unpacked").touch()
    return root


def package_version(package: str, scratch: Path) -> str:
    deb = sorted((scratch / "debs").glob(f"{package}_*.deb"))[-1]
    return deb.name.split("_")[1].replace("%3a", ":")  # apt writes an epoch's colon so


def copyright_paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of a debian/copyright file as {field: value} (DEP-5 syntax)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match and not line.startswith(" "):
                key = match.group(1).lower()
                fields[key] = match.group(2).strip()
            elif key:
                fields[key] += "\n" + line.strip()
        paragraphs.append(fields)
    return paragraphs


def file_licence(paragraphs: list[dict[str, str]], path: str) -> tuple[str, str]:
    """(licence, copyright) of ``path`` by DEP-5's rule: the last matching Files
    paragraph wins."""
    found = ("", "")
    for para in paragraphs:
        patterns = para.get("files", "").split()
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            licence = para.get("license", "").splitlines()[0].strip()
            found = (licence, " ".join(para.get("copyright", "").split()))
    return found


def licence_of(source: Source, copyright_text: str, rel_path: str) -> tuple[str, str]:
    """(licence, attribution) of one file; ("", reason) when it is unclear."""
    if source.licence:
        if source.evidence not in " ".join(copyright_text.split()):
            return "", f"debian/copyright does not say {source.evidence!r}"
        return source.licence, source.attribution
    licence, holder = file_licence(copyright_paragraphs(copyright_text), rel_path)
    return licence, holder or source.package


def source_files(source: Source, root: Path, scratch: Path) -> list[tuple[str, Path]]:
    """(copyright path, local file) of every audio file of a source; archive members
    are extracted into scratch/archives first."""
    if source.archive:
        out = scratch / "archives" / source.package
        with zipfile.ZipFile(root / source.archive) as archive:
            names = [n for n in archive.namelist()
                     if any(fnmatch.fnmatchcase(n, p) for p in source.patterns)]
            for name in names:
                if not (out / name).exists():
                    archive.extract(name, out)
        return [(source.archive_prefix + n, out / n) for n in sorted(names)]
    found = sorted({p for pattern in source.patterns for p in root.glob(pattern)})
    files = []
    for path in found:
        rel = str(path.relative_to(root))
        files.append((rel.removeprefix(source.strip), path))
    return files


def file_key(source: Source, rel: str) -> str:
    return f"{source.package}/{rel}"


# --- screening and writing -----------------------------------------------------------


def load_mono(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``sample_rate``, peak-normalised to PEAK."""
    x = load_audio(path, sample_rate)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x * (PEAK / peak)).astype(np.float32) if peak > 0 else x


def kept_runs(x: np.ndarray, scores: list[ExcerptScore]) -> list[tuple[int, int, list]]:
    """(start, stop, scores) of each run of kept, audible excerpts of one file."""
    keep = keep_mask(scores)
    bounds = excerpt_bounds(len(x), SAMPLE_RATE)
    runs: list[tuple[int, int, list]] = []
    for (lo, hi), ok, score in zip(bounds, keep, scores):
        if not ok or rms_db(x[lo:hi]) < SILENT_DB:
            continue
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi, runs[-1][2] + [score])
        else:
            runs.append((lo, hi, [score]))
    return runs


def segment_meta(source: Source, rel: str, licence: str, holder: str) -> dict:
    return {"file": rel, "source": source.name, "package": source.package,
            "kind": source.kind, "licence": licence, "attribution": holder}  # fmt: skip


def score_summary(scores: list[ExcerptScore]) -> dict:
    """The worst (most drum-like) of each score over a segment's excerpts."""
    return {
        "perc_share": round(max(s.perc_share for s in scores), 3),
        "spectral_pulse": round(max(s.spectral_pulse for s in scores), 3),
        "model_hits_per_min": round(max(s.model_hits_per_min for s in scores), 1),
        "model_pulse": round(max(s.model_pulse for s in scores), 3),
        "model_kit_classes": max(s.model_kit_classes for s in scores),
        "thumps_per_min": round(max(s.thumps_per_min for s in scores), 1),
        "model_kicks_per_min": round(max(s.model_kicks_per_min for s in scores), 1),
        "model_kick_share": round(max(s.model_kick_share for s in scores), 3),
    }


Kept = list[tuple[np.ndarray, dict]]  # (audio, segment metadata) ready to write


def screen_long_file(x: np.ndarray, meta: dict, loaded, tally: Tally) -> Kept:
    """Screen one long file; its kept runs."""
    scores = screen_audio(x, SAMPLE_RATE, loaded)
    runs = kept_runs(x, scores)
    kept = sum(hi - lo for lo, hi, _ in runs) / SAMPLE_RATE
    drum_sec = sum(
        hi - lo
        for (lo, hi), ok in zip(excerpt_bounds(len(x), SAMPLE_RATE), keep_mask(scores))
        if not ok
    ) / SAMPLE_RATE
    tally.refused_sec += drum_sec
    tally.silent_sec += len(x) / SAMPLE_RATE - kept - drum_sec
    if not runs and drum_sec:
        tally.refused_files.append(meta["file"])
    return [(x[lo:hi], {**meta, "file_offset_sec": lo / SAMPLE_RATE,
                        "screen": score_summary(run_scores)})
            for lo, hi, run_scores in runs]  # fmt: skip


def screen_short_files(items: Kept, loaded, tally: Tally) -> Kept:
    """Screen short files end to end (one model call per batch, not per file); a file
    is kept when no excerpt it touches has drums."""
    if not items:
        return []
    x = np.concatenate([a for a, _ in items])
    scores = screen_audio(x, SAMPLE_RATE, loaded)
    bounds = excerpt_bounds(len(x), SAMPLE_RATE)
    offset, kept = 0, []
    for audio, meta in items:
        lo, hi = offset, offset + len(audio)
        offset = hi
        touched = [s for (a, b), s in zip(bounds, scores) if a < hi and b > lo]
        if any(s.drums for s in touched):
            tally.refused_sec += len(audio) / SAMPLE_RATE
            tally.refused_files.append(meta["file"])
        elif rms_db(audio) < SILENT_DB:
            tally.silent_sec += len(audio) / SAMPLE_RATE
        else:
            kept.append((audio, {**meta, "file_offset_sec": 0.0,
                                 "screen": score_summary(touched)}))  # fmt: skip
    return kept


def screen_source(source: Source, files: list, loaded, tally: Tally) -> Kept:
    """Every kept stretch of a source's files, in file order."""
    kept: Kept = []
    batch: Kept = []
    for rel, path, licence, holder in files:
        x, meta = load_mono(path), segment_meta(source, rel, licence, holder)
        if len(x) >= BATCH_SEC * SAMPLE_RATE:
            kept += screen_long_file(x, meta, loaded, tally)
            continue
        batch.append((x, meta))
        if sum(len(a) for a, _ in batch) > 300 * SAMPLE_RATE:
            kept += screen_short_files(batch, loaded, tally)
            batch = []
    return kept + screen_short_files(batch, loaded, tally)


def build_source(
    source: Source,
    scratch: Path,
    loaded,
    writers: dict[str, PoolWriter],
    test_share: float,
    max_hours: float = 0.0,
    held_out: Collection[str] = (),
    pinned: Mapping[str, str] | None = None,
) -> dict:
    """Unpack, licence-check, screen and write one source; its manifest entry.

    The split comes after the screen, over the files that kept something, so every
    source with two such files is held out in part (not only refused there)."""
    root = unpack(source.package, scratch)
    doc = root / "usr/share/doc" / source.package / "copyright"
    text = doc.read_text(errors="replace")
    tally, unclear = Tally(), []
    files = []
    for rel, path in source_files(source, root, scratch):
        licence, holder = licence_of(source, text, rel)
        if FREE_LICENCE.match(licence):
            files.append((rel, path, licence, holder))
            tally.licences.add(licence)
        else:
            unclear.append({"file": rel, "licence": licence or holder})
    kept = screen_source(source, take_hours(source, files, max_hours), loaded, tally)
    keys = sorted({file_key(source, meta["file"]) for _, meta in kept})
    splits = assign_splits({source.name: keys}, test_share, held_out, pinned)
    for key in keys:
        tally.files[splits[key]] += 1
    tally.pinned_files = sum(key in (pinned or {}) for key in keys)
    for audio, meta in kept:
        split = splits[file_key(source, meta["file"])]
        writers[split].add(audio, meta)
        tally.kept_sec[split] += len(audio) / SAMPLE_RATE
    return source_entry(source, scratch, tally, unclear)


def take_hours(source: Source, files: list, max_hours: float) -> list:
    """The files in the order of a hash up to ``max_hours`` (0 = all): a subset that
    is the same every build. Its hash is not the split's (the lowest split hashes are
    the held-out files: taking those first would hold out most of a subset)."""
    if max_hours <= 0:
        return files
    import soundfile

    taken, total_sec = [], 0.0
    order = sorted(files, key=lambda f: hash_unit("subset|" + file_key(source, f[0])))
    for item in order:
        if total_sec >= max_hours * 3600:
            break
        taken.append(item)
        total_sec += soundfile.info(str(item[1])).duration
    return taken


def source_entry(source: Source, scratch: Path, tally: Tally, unclear: list) -> dict:
    hours = 1 / 3600
    return {
        "source": source.name,
        "package": source.package,
        "version": package_version(source.package, scratch),
        "kind": source.kind,
        "licences": sorted(tally.licences),
        "note": source.note,
        "files": dict(tally.files),
        "files_pinned": tally.pinned_files,
        "hours_kept": {k: round(v * hours, 3) for k, v in tally.kept_sec.items()},
        "hours_refused_drums": round(tally.refused_sec * hours, 3),
        "hours_silent": round(tally.silent_sec * hours, 3),
        "files_refused_whole": tally.refused_files,
        "files_licence_unclear": unclear,
    }


# --- calibration ---------------------------------------------------------------------

CALIBRATION_LEVELS_DB = (-12.0, -6.0, 0.0, 6.0)  # drums-to-music of the mixed groove
CALIBRATION_KITS = ("synth:3", "synth:11", "synth:27", "ColomboAcousticDrumkit",
                    "Gimme A Hand 1.0", "circAfrique v4", "BJA_Pacific")  # fmt: skip


def groove_excerpts(n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(kit, 10 s of a generated groove) rendered through drumtx's kits, n of them."""
    from drumtx.errors import DrumtxError
    from drumtx.synth import load_kit
    from drumtx.synth.grooves import generate_groove

    kits = []
    for spec in CALIBRATION_KITS:
        try:
            kits.append((spec, load_kit(spec)))
        except DrumtxError:  # a Hydrogen kit that is not installed here
            continue
    grooves = []
    n_excerpt = int(EXCERPT_SEC * SAMPLE_RATE)
    while len(grooves) < n:
        groove = generate_groove(rng)
        if groove.beat_type != "beat":
            continue  # a one-bar fill is not a kit keeping time
        spec, kit = kits[len(grooves) % len(kits)]
        audio = kit.render(groove.notes, EXCERPT_SEC + 2, SAMPLE_RATE)
        grooves.append((spec, audio[SAMPLE_RATE : SAMPLE_RATE + n_excerpt]))
    return grooves


def calibrate(out_dir: Path, per_source: int, loaded, seed: int = 0) -> dict:
    """Mix grooves into kept excerpts of every source at CALIBRATION_LEVELS_DB; the
    share the screen refuses at each level, and of the same excerpts alone."""
    from drumtx.music import load_music_pool

    rng = np.random.default_rng(seed)
    n = int(EXCERPT_SEC * SAMPLE_RATE)
    by_source: dict[str, list[np.ndarray]] = defaultdict(list)
    for split in SPLITS:
        if not json.loads((out_dir / split / "index.json").read_text())["n_samples"]:
            continue
        pool = load_music_pool(out_dir / split, SAMPLE_RATE)
        for seg in pool.segments:
            if seg["length"] >= n:
                by_source[seg["source"]].append((pool, seg))
    result: dict[str, dict] = {}
    grooves = groove_excerpts(per_source, rng)
    for source, segs in sorted(by_source.items()):
        picks = [segs[i] for i in rng.choice(len(segs), per_source)]
        counts = {"alone": 0, **{f"{lvl:+g} dB": 0 for lvl in CALIBRATION_LEVELS_DB}}
        for (pool, seg), (_, drums) in zip(picks, grooves):
            start = seg["start"] + int(rng.integers(0, seg["length"] - n + 1))
            music = np.asarray(pool.audio[start : start + n], np.float32) / 32768
            counts["alone"] += screen_audio(music, SAMPLE_RATE, loaded)[0].drums
            for lvl in CALIBRATION_LEVELS_DB:
                mixed = mix_backing(drums, music, lvl)
                mixed = mixed / max(1.0, float(np.abs(mixed).max()))
                counts[f"{lvl:+g} dB"] += screen_audio(mixed, SAMPLE_RATE, loaded)[
                    0
                ].drums
        result[source] = {"n": len(picks), "refused": counts}
    return result


# --- manifest ------------------------------------------------------------------------

REBUILD = [
    "apt-get update",
    "nice python tools/build_music_pool.py --out OUT --scratch SCRATCH --max-hours 0.5 "
    "--calibrate 20",
]
LEFT_OUT = [
    "planetblupi-music-ogg: likely rendered through a reserved SoundFont",
    "hydrogen-drumkits-effects GuitarStrums: kept for kits work, not used here",
    "Frets on Fire song.ogg: the full mix, with drums",
    "unknown-horizons and widelands sound effects: hits and knocks, not music",
]


def write_manifest(out_dir: Path, manifest: dict) -> list[Path]:
    json_path, md_path = out_dir / "manifest.json", out_dir / "manifest.md"
    json_path.write_text(json.dumps(manifest, indent=1) + "\n")
    lines = ["# drumtx real-music pool", "",
             f"Built {manifest['built']} in {manifest['build_minutes']} min; "
             f"{manifest['sample_rate']} Hz mono; held-out share "
             f"{manifest['test_share']}; screened by {manifest['screen']}.",
             *([f"Resampled from {manifest['resampled_from']} (the same excerpts "
                "decoded again from their sources)."] if "resampled_from" in manifest
               else []),
             *([f"Files listed in {Path(manifest['splits_pinned_by']).name} kept "
                "their split there (files pinned per source: manifest.json)."]
               if manifest.get("splits_pinned_by") else []),
             "", "| source | package | licence | train h | test h | refused h | files "
             "train/test |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in manifest["sources"]:
        kept = s["hours_kept"]
        lines.append(
            f"| {s['source']} | {s['package']} {s['version']} | "
            f"{', '.join(s['licences']) or 'none kept'} | {kept.get('train', 0):.2f} | "
            f"{kept.get('test', 0):.2f} | {s['hours_refused_drums']:.2f} | "
            f"{s['files'].get('train', 0)}/{s['files'].get('test', 0)} |"
        )
    lines += ["", "## Attribution", ""]
    lines += [f"- {a}" for a in manifest["attribution"]]
    lines += ["", "## Left out", ""] + [f"- {x}" for x in manifest["left_out"]]
    if manifest.get("calibration"):
        lines += ["", "## Screen calibration (excerpts refused)", "", "```",
                  json.dumps(manifest["calibration"], indent=1), "```"]  # fmt: skip
    lines += ["", "## Rebuild", "", "```"] + manifest["rebuild"] + ["```", ""]
    md_path.write_text("\n".join(lines))
    return [json_path, md_path]


def pool_split_list(out_dir: Path) -> dict[str, str]:
    """Each kept file's split in the pool in ``out_dir`` (its splits' index.json),
    by the key the split rule uses (package/file)."""
    return {f"{seg['package']}/{seg['file']}": split
            for split in SPLITS
            for seg in json.loads((out_dir / split / INDEX_NAME).read_text())
            ["segments"]}  # fmt: skip


def write_split_list(out_dir: Path, manifest: dict) -> Path:
    """<out>/splits.json: what ``--splits`` reads back. Commit it over
    tools/music_pool_splits.json to pin a new pool's split for the next rebuild."""
    path = out_dir / "splits.json"
    doc = {"format": SPLIT_LIST_FORMAT,
           "about": "each kept file of a drumtx real-music pool and its split; "
                    "build_music_pool.py --splits keeps these files where they are",
           "built": manifest["built"], "screen": manifest["screen"],
           "splits": dict(sorted(pool_split_list(out_dir).items()))}  # fmt: skip
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read_split_list(path: Path) -> dict[str, str]:
    """The file -> split map of a splits.json, checked: a DataError says what is
    wrong with it."""
    hint = (f"pass a splits.json that build_music_pool.py wrote (the pinned one is "
            f"{PINNED_SPLITS}), or --splits none for the hash rule alone")
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"cannot read the split list {path}: {exc.strerror}",
                        hint=hint) from exc  # fmt: skip
    except ValueError as exc:
        raise DataError(f"{path} is not JSON ({exc})", hint=hint) from exc
    splits = doc.get("splits") if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("format") != SPLIT_LIST_FORMAT
            or not isinstance(splits, dict)):  # fmt: skip
        raise DataError(f"{path} is not a music-pool split list", hint=hint)
    bad = sorted(k for k, v in splits.items() if v not in SPLITS)
    if bad:
        raise DataError(f"{path}: {len(bad)} files with a split other than "
                        f"{' or '.join(SPLITS)}, e.g. {bad[0]!r}",
                        hint=hint)  # fmt: skip
    return splits


def attribution_lines(out_dir: Path) -> list[str]:
    """One line per (package, licence, attribution) among the kept segments."""
    seen = set()
    for split in SPLITS:
        index = json.loads((out_dir / split / "index.json").read_text())
        for seg in index["segments"]:
            seen.add((seg["package"], seg["licence"], seg["attribution"]))
    return [f"{p} ({lic}): {who}" for p, lic, who in sorted(seen)]


# --- main ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/drumtx-music"))
    parser.add_argument("--sources", default="", help="comma-separated source names")
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--no-model", action="store_true",
                        help="screen with the spectral test alone")  # fmt: skip
    parser.add_argument("--max-hours", type=float, default=0.0,
                        help="hours taken from each source, in hash order; 0 = all")
    parser.add_argument("--hold-out", type=Path, action="append", default=[],
                        metavar="SPLIT_DIR",
                        help="an earlier pool's split (e.g. OLD/test) whose "
                        "files stay held out here, whatever their hash "
                        "(repeatable)")  # fmt: skip
    parser.add_argument("--splits", default=str(PINNED_SPLITS), metavar="FILE|none",
                        help="a splits.json (a pool's own, or the committed "
                        "tools/music_pool_splits.json, the default): the files it "
                        "lists keep their split whatever the screen keeps; none: "
                        "the hash rule alone")  # fmt: skip
    parser.add_argument("--calibrate", type=int, default=0, metavar="N")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="calibrate the pool already in --out; build nothing")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--resample-from", type=Path, default=None, metavar="POOL",
                        help="write POOL's excerpts again at --sample-rate, decoded "
                        "from the sources in --scratch (no download, no screening)")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                        help="Hz of the pool's audio (the model's audio.sample_rate)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED,
                        help="the model that screens for drums (default: the shipped "
                        "one); a pool is rebuilt exactly only by the model that "
                        "screened it, named in its manifest")  # fmt: skip
    return parser


def load_screen_model(threads: int, weights: Path = SHIPPED):
    import torch

    from drumtx.config import load_config
    from drumtx.inference import load_model

    torch.set_num_threads(threads)
    return load_model(weights, load_config(None), torch.device("cpu"))


def screen_name(args: argparse.Namespace) -> str:
    """How the pool was screened, for its manifest: the model by its file's sha256, so
    a rebuild can pick the same weights (a newer shipped model keeps other excerpts)."""
    if args.no_model:
        return f"screen {SCREEN_VERSION}: spectral"
    digest = hashlib.sha256(args.checkpoint.read_bytes()).hexdigest()
    return (f"screen {SCREEN_VERSION}: spectral + model {args.checkpoint.name} "
            f"(sha256 {digest[:16]})")


def screen_key(text: str) -> tuple[int, str]:
    """(rules version, weights sha256 or "") of a pool's screen as its manifest
    names it; names before SCREEN_VERSION 2 ("spectral + model ...") are version 1."""
    version = re.match(r"screen (\d+): ", text)
    digest = re.search(r"sha256 ([0-9a-f]+)", text)
    return int(version.group(1)) if version else 1, digest.group(1) if digest else ""


def warn_other_screen(split_list: Path, built: str) -> None:
    """Say so when the pinned split list's pool was screened otherwise: its files
    stay in their splits, but other excerpts are kept, so held-out music differs."""
    pinned = json.loads(split_list.read_text()).get("screen", "")
    if pinned and screen_key(pinned) != screen_key(built):
        print(f"warning: {split_list.name} was screened by \"{pinned}\", this build "
              f"by \"{built}\": files keep their splits, but other excerpts are kept, "
              "so the held-out music and every score on it differ", file=sys.stderr)
        print("hint: screen with the weights the pinned pool names "
              "(drumtx/models/DATA.md, Rebuild: --checkpoint)", file=sys.stderr)


def local_file(source: Source, scratch: Path, rel: str) -> Path:
    """Where a segment's file (its copyright path) lies in the scratch directory."""
    if source.archive:
        member = rel.removeprefix(source.archive_prefix)
        return scratch / "archives" / source.package / member
    return scratch / "root" / source.package / (source.strip + rel)


def resample_split(old_dir: Path, new_dir: Path, scratch: Path, rate: int) -> Path:
    """Write old_dir's excerpts again at ``rate``, decoded afresh from their sources
    (not resampled from the pool's int16, which holds nothing above its Nyquist)."""
    old = load_music_pool(old_dir)
    by_name = {s.name: s for s in SOURCES}
    writer = PoolWriter(new_dir, rate)
    cache: tuple[Path, np.ndarray] | None = None
    for seg in old.segments:
        source = by_name.get(seg["source"])
        if source is None:
            raise DataError(f"{old_dir}: segment of unknown source {seg['source']!r}",
                            hint="resample pools that build_music_pool.py built")
        path = local_file(source, scratch, seg["file"])
        if not path.exists():
            raise DataError(f"{path} is missing",
                            hint="pass the --scratch the pool was built with")
        if cache is None or cache[0] != path:
            cache = (path, load_mono(path, rate))
        lo = int(round(seg["file_offset_sec"] * rate))
        n = int(round(seg["length"] * rate / old.sample_rate))
        writer.add(cache[1][lo : lo + n], {k: v for k, v in seg.items()
                                           if k not in ("start", "length")})
    return writer.close()


def resample_pool(args: argparse.Namespace) -> int:
    """``--resample-from``: the same pool at ``--sample-rate``, split by split."""
    started = time.time()
    try:
        manifest = json.loads((args.resample_from / "manifest.json").read_text())
        for split in SPLITS:
            print(resample_split(args.resample_from / split, args.out / split,
                                 args.scratch, args.sample_rate))  # fmt: skip
    except (DataError, OSError) as exc:
        print_error(exc if isinstance(exc, DataError) else DataError(str(exc)))
        return 2
    manifest.update(sample_rate=args.sample_rate,
                    resampled_from=str(args.resample_from),
                    build_minutes=round((time.time() - started) / 60, 1))
    manifest.pop("calibration", None)  # measured on the other rate's audio
    for path in [*write_manifest(args.out, manifest),
                 write_split_list(args.out, manifest)]:  # fmt: skip
        print(path)
    return 0


def recalibrate(args: argparse.Namespace) -> int:
    """Run the calibration on the pool in args.out and rewrite its manifest."""
    manifest = json.loads((args.out / "manifest.json").read_text())
    loaded = None if args.no_model else load_screen_model(args.threads, args.checkpoint)
    manifest["calibration"] = calibrate(args.out, args.calibrate or 20, loaded)
    for path in write_manifest(args.out, manifest):
        print(path)
    return 0


def held_out_keys(split_dirs: list[Path]) -> set[str]:
    """The file keys of earlier pool splits (their index.json), to hold out again."""
    keys = set()
    for split_dir in split_dirs:
        segments = load_music_pool(split_dir).segments  # checks it is a pool split
        keys |= {f"{seg['package']}/{seg['file']}" for seg in segments}
    return keys


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    if args.calibrate_only:
        return recalibrate(args)
    if (args.out / "manifest.json").exists() and not args.overwrite:
        print(f"error: {args.out} holds a pool; pass --overwrite", file=sys.stderr)
        return 2
    if args.resample_from:
        return resample_pool(args)
    if args.sample_rate != SAMPLE_RATE:
        print(f"error: a pool is built at {SAMPLE_RATE} Hz (the screen's rate)",
              file=sys.stderr)
        print("hint: build it, then --resample-from it at --sample-rate "
              f"{args.sample_rate}", file=sys.stderr)
        return 2
    chosen = [s for s in SOURCES
              if not args.sources or s.name in args.sources.split(",")]  # fmt: skip
    try:  # before any download
        held_out = held_out_keys(args.hold_out)
        pinned = None if args.splits == "none" else read_split_list(Path(args.splits))
    except DataError as exc:
        print_error(exc)
        return 2
    try:  # a missing or unreadable --checkpoint stops the build before any download
        loaded = None if args.no_model else load_screen_model(args.threads,
                                                              args.checkpoint)
    except DrumtxError as exc:
        print_error(exc)
        return 2
    screen = screen_name(args)  # hashes the weights: once
    if pinned is not None:
        warn_other_screen(Path(args.splits), screen)
    writers = {split: PoolWriter(args.out / split, SAMPLE_RATE) for split in SPLITS}
    entries = []
    for source in chosen:
        t0 = time.time()
        entries.append(build_source(source, args.scratch, loaded, writers,
                                    args.test_share, args.max_hours,
                                    held_out, pinned))  # fmt: skip
        print(f"{source.name}: {entries[-1]['hours_kept']} h kept, "
              f"{entries[-1]['hours_refused_drums']} h refused "
              f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    for split in SPLITS:
        print(writers[split].close())
    manifest = {
        "built": time.strftime("%Y-%m-%d"), "sample_rate": SAMPLE_RATE,
        "test_share": args.test_share, "max_hours_per_source": args.max_hours,
        "held_out_from": [str(p) for p in args.hold_out],
        "splits_pinned_by": None if pinned is None else args.splits,
        "screen": screen, "sources": entries,
        "attribution": attribution_lines(args.out), "left_out": LEFT_OUT,
        "rebuild": REBUILD, "build_minutes": round((time.time() - started) / 60, 1),
    }  # fmt: skip
    paths = write_manifest(args.out, manifest)  # before the (long) calibration
    split_list = write_split_list(args.out, manifest)
    if args.calibrate:
        manifest["calibration"] = calibrate(args.out, args.calibrate, loaded)
        paths = write_manifest(args.out, manifest)
    for path in [*paths, split_list]:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
