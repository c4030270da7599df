"""Rebuild the folder of real recorded drum kits (SFZ) and its manifest.

Sources: public repository snapshots of the sfzinstruments kits (bare git directories,
e.g. from the session's ``fetch github:sfzinstruments/SamsSonor`` under
/work/.mirror/OWNER+NAME/repo) and Debian packages fetched with ``apt-get download``
(run ``apt-get update`` first). Every kit's own licence file is read; a kit is used
only when it says CC0, CC-BY, CC-BY-SA, GPL, BSD or MIT. One-shot collections without
a mapping (Debian's) get a generated .sfz with General MIDI keys; a kit whose own SFZ
drumtx cannot play as it is gets one .sfz per microphone from tools/kit_wrappers.py
(Gogodze: microphones and hi-hat states picked by controllers), and a kit without
cymbals a used kit's cymbals grafted on (Gogodze: MuldjordKit's). Nothing here is
committed to drumtx: the folder lives outside the repository.

Usage: python tools/fetch_real_kits.py [--out /work/kits] [--mirror /work/.mirror]
       [--debs DIR] [--skip-apt]
Writes OUT/<kit>/..., OUT/kits.json and OUT/KITS.md; prints the --kits specs.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf
from kit_wrappers import GRAFTS, WRAPPERS

from drumtx.errors import ConfigError
from drumtx.synth.sfz import SfzKit, mic_kind, read_sfz, sfz_files

ALLOWED = ("CC0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2+", "BSD-3-Clause",
           "MIT")


@dataclass
class Source:
    name: str
    kind: str  # "repo" or "deb"
    origin: str  # owner/name or Debian package
    licence: str  # what the licence file must say (checked)
    licence_file: str  # inside the repository or the package
    licence_pattern: str  # a regex the licence file must match
    attribution: str
    spec_path: str  # the kit's .sfz file or mic folder, inside OUT/<name>
    held_out: bool = False
    why: str = ""
    layout: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    wrap: str = ""  # kit_wrappers.WRAPPERS: per-mic .sfz files written after the check
    graft: str = ""  # a used source whose cymbals kit_wrappers.GRAFTS adds


# Debian one-shots: GM key -> (label, files as velocity layers, soft to hard)
SONIC_PI = {
    36: ("Kick", ["drum_bass_soft", "drum_bass_hard"]),
    38: ("Snare", ["drum_snare_soft", "drum_snare_hard"]),
    42: ("Hihat Closed", ["drum_cymbal_closed"]),
    44: ("Hihat Pedal", ["drum_cymbal_pedal"]),
    46: ("Hihat Open", ["drum_cymbal_open"]),
    50: ("Tom High", ["drum_tom_hi_soft", "drum_tom_hi_hard"]),
    47: ("Tom Mid", ["drum_tom_mid_soft", "drum_tom_mid_hard"]),
    43: ("Tom Low", ["drum_tom_lo_soft", "drum_tom_lo_hard"]),
    49: ("Crash", ["drum_cymbal_soft", "drum_cymbal_hard"]),
    57: ("Splash", ["drum_splash_soft", "drum_splash_hard"]),
}
EXADRUMS = {  # its Default.xml kit
    36: ("Kick", ["BD_Acou_01"]),
    38: ("Snare", ["Snr_Acou_01"]),
    42: ("Hihat Closed", ["HiHat"]),
    50: ("Tom High", ["Tom01"]),
    43: ("Floor Tom", ["Tom03"]),
    49: ("Crash", ["Crash_High"]),
    51: ("Ride", ["RideEdge"]),
    53: ("Ride Bell", ["RideBell"]),
}

SOURCES = [
    Source("MuldjordKit", "repo", "sfzinstruments/DrumGizmo.MuldjordKit", "CC-BY-4.0",
           "LICENSE", r"^Attribution 4\.0 International",
           "Lars Muldjord (samples, www.muldjord.com / DrumGizmo), kinwie (SFZ "
           "mapping); CC BY 4.0", "DrumGizmo/MuldjordKit/Multi"),
    Source("SamsSonor", "repo", "sfzinstruments/SamsSonor", "CC-BY-SA-4.0",
           "LICENSE", r"^Attribution-ShareAlike 4\.0 International",
           "Sam Greene (samples, Sonor Force 3001), kinwie (SFZ mapping); CC BY-SA 4.0",
           "SamsSonor.sfz", held_out=True,
           why="a real acoustic kit recorded as a mixed stereo pair "
           "(Sonor Force 3001): the held-out real kit. MuldjordKit, the one "
           "multi-microphone kit obtainable here (15 mics with full bleed), teaches "
           "more in training than it would measure, and real studio tracks are what "
           "the model must learn to hear"),
    Source("Salamander", "repo", "SoerenSofke/Salamander-Drumkit-Trim", "CC-BY-SA-3.0",
           "README.md",
           r"^\[CC BY-SA\]\(http://creativecommons\.org/licenses/by-sa/3\.0/\)",
           "Alexander Holm (samples, Salamander Drumkit), kinwie (SFZ mapping), essej "
           "(trimmed samples), Soeren Sofke (archive); CC BY-SA 3.0",
           "Salamander Drumkit Trim.sfz",
           why="a real acoustic kit (birch shells, Paiste and Stagg cymbals) recorded "
           "with a stereo overhead pair, the whole kit with rides and crashes"),
    Source("Gogodze", "repo", "sfzinstruments/karoryfer.gogodze-phu-vol-ii", "CC0",
           "LICENSE", r"^CC0 1\.0 Universal",
           "Karoryfer Lecolds (Gogodze Phu Vol II, 2018: samples and SFZ); CC0 1.0",
           "mics-cymbals", wrap="gogodze", graft="MuldjordKit",
           why="a real acoustic kit recorded with 7 microphones (kick, snare, 3 toms, "
           "hi-hat in 6 states; no ride or crash): its own SFZ picks microphones and "
           "hi-hat states by controllers, so tools/kit_wrappers.py writes one .sfz per "
           "microphone (mics/), and the same with MuldjordKit's rides and crashes as "
           "its matching microphones heard them (mics-cymbals/, what training plays: "
           "without cymbals its renders would drop GMD's ride and crash notes)"),
    Source("sonic-pi-drums", "deb", "sonic-pi-samples", "CC0",
           "usr/share/doc/sonic-pi-samples/copyright",
           r"Files: etc/samples/drum_snare_hard\.flac\n[^\n]*\n[^\n]*\nLicense: CC0",
           "menegass (freesound.org, CC0) via Debian's sonic-pi-samples",
           "kit.sfz", layout=SONIC_PI),
    Source("exadrums-default", "deb", "exadrums", "BSD-3-Clause",
           "usr/share/doc/exadrums/copyright", r"Files: \*\n[^\n]*\nLicense: BSD-3",
           "Jeremy Oden (eXaDrums Default kit) via Debian's exadrums; BSD-3-Clause",
           "kit.sfz", layout=EXADRUMS),
]  # fmt: skip
LEFT_OUT = [
    ("sfzinstruments/DrumGizmo.DRSKit", "snapshot 754 MB, over the 500 MiB a "
     "snapshot may have here; not fetched, licence not read"),
    ("sfzinstruments/WilkinsonAudio.NakedDrums", "snapshot 1.28 GB, over the limit; "
     "not fetched, licence not read"),
    ("sfzinstruments/virtuosity_drums", "snapshot 1.23 GB, over the limit; not "
     "fetched, licence not read"),
    ("sfzinstruments/karoryfer.big-rusty-drums", "snapshot 610 MB, over the limit; "
     "not fetched, licence not read"),
    ("sfzinstruments/karoryfer.swirly-drums", "snapshot 861 MB, over the limit; not "
     "fetched, licence not read"),
    ("michaelwillis/tchimera-drum-kit (CC0 samples, CC-BY-SA-4.0 derivatives)",
     "snapshot 755 MB, over the limit; not fetched"),
    ("avldrums.lv2 (AVL Drumkits: Black Pearl, Red Zeppelin)", "reserved for "
     "independent evaluation: never fetched, refused by name by drumtx"),
    ("lmms-common samples/drums (Debian: GPL-2+ under 'Files: *')", "licence "
     "unclear: LMMS's maintainers say the stock samples' origin and licence are "
     "unknown (github.com/LMMS/lmms/issues/5126)"),
    ("sonic-pi-samples drum_heavy_kick, drum_roll, drum_cowbell", "a second kick "
     "of another kit, a roll (not one hit), a cowbell (not a roland9 class)"),
]  # fmt: skip
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")


def licence_ok(text: str, source: Source) -> bool:
    """The licence file says what the source is known for, and nothing forbids use."""
    forbids = r"NonCommercial|NoDerivatives|non-commercial (?:use|purposes) only"
    if re.search(forbids, text, re.I):
        return False
    return source.licence in ALLOWED and bool(
        re.search(source.licence_pattern, text, re.M)
    )


def extract_repo(git_dir: Path, dest: Path) -> list[str]:
    """Extract HEAD of a bare snapshot into ``dest``; the paths whose blobs the
    snapshot lacks (large files) are skipped and returned."""
    listing = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "HEAD"],
        check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    missing = []
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        sha = meta.split()[2]
        probe = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "-e", sha])
        if probe.returncode != 0:
            missing.append(path)
    archive = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", "HEAD",
         *[f":(exclude){p}" for p in missing]],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return missing


def extract_deb(package: str, debs_dir: Path, dest: Path, skip_apt: bool) -> Path:
    """Unpack a Debian package (``apt-get download`` unless ``skip_apt``) into dest."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    if not skip_apt and not list(debs_dir.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs_dir, check=True)
    debs = sorted(debs_dir.glob(f"{package}_*.deb"))
    if not debs:
        raise SystemExit(
            f"error: no {package}_*.deb in {debs_dir} (run apt-get update)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest)], check=True)
    return debs[-1]


def find_sample(root: Path, stem: str) -> Path:
    hits = sorted(p for p in root.rglob(f"{stem}.*") if p.suffix in AUDIO_SUFFIXES)
    if not hits:
        raise SystemExit(f"error: no sample {stem!r} under {root}")
    return hits[0]


def write_layout_sfz(kit_dir: Path, unpacked: Path, layout: dict) -> list[Path]:
    """Copy the one-shots into kit_dir/samples and write kit_dir/kit.sfz for them:
    several files of a key are velocity layers, or round robins when marked ``rr:``."""
    (kit_dir / "samples").mkdir(parents=True, exist_ok=True)
    lines = ["// generated by drumtx tools/fetch_real_kits.py", "<control>",
             "default_path=samples/", "<global> amp_veltrack=80"]  # fmt: skip
    used = []
    for key, (label, stems) in sorted(layout.items()):
        hat = {"Hihat Closed": " group=1", "Hihat Pedal": " group=1",
               "Hihat Open": " group=2 off_by=1"}.get(label, "")  # fmt: skip
        lines.append(f"<group> key={key} group_label={label}{hat}")
        for i, stem in enumerate(stems):
            src = find_sample(unpacked, stem.removeprefix("rr:"))
            shutil.copy2(src, kit_dir / "samples" / src.name)
            used.append(kit_dir / "samples" / src.name)
            if stem.startswith("rr:"):
                where = f"seq_length={len(stems)} seq_position={i + 1}"
            else:
                lo = 1 + (127 * i) // len(stems)
                where = f"lovel={lo} hivel={(127 * (i + 1)) // len(stems)}"
            lines.append(f"<region> {where} sample={src.name}")
    (kit_dir / "kit.sfz").write_text("\n".join(lines) + "\n")
    return used


def kit_stats(spec_path: Path, kit_dir: Path) -> dict:
    """Samples, microphones, size and length of the audio an SFZ kit plays from its
    own folder; samples it borrows from another kit (grafted cymbals) are counted
    apart, as that kit's manifest entry already holds their hours."""
    files = [f for f in sfz_files(spec_path) if mic_kind(f.stem) is not None]
    samples = {r.sample.resolve() for f in files for r in read_sfz(f)}
    borrowed = {p for p in samples if not p.is_relative_to(kit_dir.resolve())}
    samples -= borrowed
    present = sorted(p for p in samples if p.is_file())
    seconds = sum(sf.info(p).duration for p in present)
    return {
        "n_samples": len(present),
        "n_borrowed_samples": len(borrowed),
        "missing_samples": sorted(str(p) for p in samples - set(present))[:20],
        "n_missing_samples": len(samples) - len(present),
        "mics": [f.stem for f in files] if len(files) > 1 else ["stereo/mono mix"],
        "size_mb": round(sum(p.stat().st_size for p in present) / 1e6, 1),
        "sample_hours": round(seconds / 3600, 3),
    }


def build_source(source: Source, args: argparse.Namespace) -> dict:
    """Fetch, licence-check and lay out one kit; its manifest entry."""
    kit_dir = args.out / source.name
    shutil.rmtree(kit_dir, ignore_errors=True)
    entry = {**asdict(source), "status": "used", "missing_in_snapshot": []}
    entry.pop("layout")
    if source.kind == "repo":
        git_dir = args.mirror / source.origin.replace("/", "+") / "repo"
        if not git_dir.is_dir():
            return {**entry, "status": "left out", "why": f"no snapshot at {git_dir} "
                    f"(fetch github:{source.origin} first)"}  # fmt: skip
        entry["missing_in_snapshot"] = extract_repo(git_dir, kit_dir)
        head = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        entry["revision"] = head.stdout.strip()
        licence_path = kit_dir / source.licence_file
    else:
        unpacked = args.debs / "unpacked" / source.origin
        deb = extract_deb(source.origin, args.debs, unpacked, args.skip_apt)
        entry["revision"] = deb.name
        licence_path = unpacked / source.licence_file
        shutil.copy2(
            licence_path, (kit_dir.mkdir(parents=True) or kit_dir) / "COPYRIGHT"
        )
    text = licence_path.read_text(errors="replace") if licence_path.is_file() else ""
    if not licence_ok(text, source):
        shutil.rmtree(kit_dir, ignore_errors=True)
        return {**entry, "status": "left out",
                "why": f"licence file {source.licence_file} does not read as "
                f"{source.licence} (or forbids commercial use)"}  # fmt: skip
    if source.kind == "deb":
        write_layout_sfz(kit_dir, unpacked, source.layout)
    if source.wrap:
        WRAPPERS[source.wrap](kit_dir)
    if source.graft:
        donor = next(d for d in SOURCES if d.name == source.graft)
        donor_spec = args.out / donor.name / donor.spec_path
        if not donor_spec.is_dir():
            return {**entry, "status": "left out", "why": f"its cymbals come from "
                    f"{donor.name}, which is not at {donor_spec}"}  # fmt: skip
        GRAFTS[source.wrap](kit_dir, donor_spec)
    return _check_kit(entry, kit_dir, source)


def _check_kit(entry: dict, kit_dir: Path, source: Source) -> dict:
    """Load the kit as make-dataset would; record its spec, stats and layout."""
    spec_path = kit_dir / source.spec_path
    try:
        kit = SfzKit(spec_path)
    except ConfigError as exc:
        return {**entry, "status": "left out", "why": f"does not load: {exc.message}"}
    entry.update(kit_stats(spec_path, kit_dir))
    entry["spec"] = kit.name
    entry["voices"] = {v: k for v, k in sorted(kit.key_map.items())}
    entry["status"] = "held out" if source.held_out else "used"
    return entry


def write_manifest(out: Path, entries: list[dict]) -> None:
    data = {
        "kits": entries,
        "left_out": [{"source": s, "why": w} for s, w in LEFT_OUT],
        "rebuild": "python tools/fetch_real_kits.py --out " + str(out),
    }
    (out / "kits.json").write_text(json.dumps(data, indent=1) + "\n")
    rows = ["| kit | source | licence | mics | samples | size MB | sample h | status |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for e in entries:
        mics = len(e.get("mics", [])) if e.get("mics") != ["stereo/mono mix"] else 1
        rows.append(
            f"| {e['name']} | {e['origin']} ({e.get('revision', '')[:16]}) | "
            f"{e['licence']} | {mics} | {e.get('n_samples', '-')} | "
            f"{e.get('size_mb', '-')} | {e.get('sample_hours', '-')} | "
            f"{e['status']}{': ' + e['why'] if e['why'] else ''} |"
        )
    rows += ["", "Left out:", ""] + [f"- {s}: {w}" for s, w in LEFT_OUT]
    credits = [f"- {e['name']}: {e['attribution']}" for e in entries]
    rows += ["", "Attribution:", "", *credits]
    (out / "KITS.md").write_text("# Real recorded kits\n\n" + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/kits"))
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument(
        "--debs",
        type=Path,
        default=None,
        help="where .deb files are downloaded (default OUT/_debs)",
    )
    parser.add_argument("--skip-apt", action="store_true",
                        help="use the .deb files already in --debs")  # fmt: skip
    args = parser.parse_args(argv)
    args.out = args.out.expanduser().resolve()
    args.debs = (args.debs or args.out / "_debs").expanduser().resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = [build_source(source, args) for source in SOURCES]
    write_manifest(args.out, entries)
    for e in entries:
        print(f"{e['status']:>9}  {e['name']}: {e.get('spec') or e['why']}")
    print(f"wrote {args.out / 'kits.json'}")
    print(f"wrote {args.out / 'KITS.md'}")
    train = [e["spec"] for e in entries if e["status"] == "used"]
    print("training kits: --kits " + " ".join(f"'{s}'" for s in train))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
