"""Command line: ``python -m drumtx COMMAND``. One function per subcommand.

Nothing heavy is imported at module level, so ``--help`` answers at once; each command
imports what it needs after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from drumtx import __version__
from drumtx.errors import ConfigError, DrumtxError
from drumtx.meter import METER_CHOICES, QUANTIZE_CHOICES

EPILOG = """\
typical use:
  drumtx transcribe song.wav            write song.drums.mid with the shipped model
  drumtx demo                           the whole path on a small made dataset (CPU)
  drumtx doctor                         check storage roots and environment
  drumtx preprocess && drumtx train     train on E-GMD (see drumtx.toml)
"""

DEVICE_HELP = (
    "where the model runs (default transcribe.device: auto, CUDA when available)"
)


class Parser(argparse.ArgumentParser):
    """argparse that ends a bad command line as every drumtx error ends: the usage of
    the command that was misused, an ``error:`` line and a ``hint:`` naming the
    nearest option or command where one is close. Subcommands inherit the class."""

    commands: dict[str, Parser]  # the top-level parser's, by name (build_parser)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_error(ConfigError(message, hint=self.hint_for(message)))
        raise SystemExit(ConfigError.exit_code)

    def hint_for(self, message: str) -> str:
        listing = f"{self.prog} --help lists them"
        if message.startswith("unrecognized arguments:"):
            options = [o for a in self._actions for o in a.option_strings]
            for word in message.split(":", 1)[1].split():
                if not word.startswith("-"):
                    continue
                near = difflib.get_close_matches(word.split("=")[0], options, n=1)
                if near:
                    return f"did you mean {near[0]}? {listing}"
            return listing
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            choices = re.findall(r"'([^']*)'", choice.group(2))
            near = difflib.get_close_matches(choice.group(1), choices, n=1)
            if near:
                return f"did you mean {near[0]}? {listing}"
        return listing


def build_parser() -> Parser:
    parser = Parser(
        prog="drumtx",
        description="Drum transcription: drum audio to drum MIDI, and model training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"drumtx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("configuration")
    group.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config (default: ./drumtx.toml, else the checkout's drumtx.toml)",
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        help="apply [profiles.NAME] from the config (e.g. quick)",
    )
    group.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override one config value, TOML syntax (repeatable), e.g. train.lr=3e-4",
    )
    group.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="HDD data root (overrides storage.data_root and $DRUMTX_DATA_ROOT)",
    )

    _add_doctor(sub, common)
    _add_make_dataset(sub, common)
    _add_preprocess(sub, common)
    _add_train(sub, common)
    _add_evaluate(sub, common)
    _add_transcribe(sub, common)
    _add_demo(sub, common)
    parser.commands = sub.choices  # each command's parser, for main's errors
    return parser


def _add_doctor(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="check storage layout, dataset and environment",
        description="Check the config, the storage roots, E-GMD, the processed store, "
        "checkpoints and the Python environment. "
        "Exit 0 when nothing FAILs, 3 otherwise.",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument(
        "--deep", action="store_true", help="decode every E-GMD file, not a sample"
    )
    p.set_defaults(func=cmd_doctor)


def _add_make_dataset(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "make-dataset",
        parents=[common],
        help="render an E-GMD-shaped dataset from MIDI performances through drum kits",
        description="Write OUT_DIR/e-gmd-v1.0.0/ with E-GMD's CSV schema, folders and "
        "file names: performances from a GMD folder (or generated grooves) rendered "
        "through synthesised kits (synth:SEED), General MIDI SoundFont drum kits "
        "(sf:NAME[:PRESET]), Hydrogen drumkits (name or folder), recorded SFZ kits "
        "(sfz:PATH) and virtual kits (virtual:SEED: each instrument from another of "
        "the given kits). Kits reserved for independent evaluation are refused.",
    )
    p.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        metavar="OUT_DIR",
        help="the data root to write into (default: the data root: --data-root, "
        "$DRUMTX_DATA_ROOT or storage.data_root)",
    )
    p.add_argument(
        "--midi-dir",
        type=Path,
        metavar="DIR",
        help="a Groove MIDI Dataset folder holding info.csv "
        "(default: generated grooves)",
    )
    _add_kit_options(p)
    p.add_argument(
        "--limit", type=int, metavar="N",
        help="at most N performances (of the --splits kept)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--max-sec",
        type=float,
        default=None,
        metavar="SEC",
        help="cut performances longer than SEC seconds",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        choices=["train", "validation", "test"],
        metavar="SPLIT",
        help="keep only performances of these splits (default: all)",
    )
    p.set_defaults(func=cmd_make_dataset)


# make-dataset's per-render shares: flag -> what that share of renders gets.
RENDER_SHARES = {
    "--studio-prob": (
        "record this share of renders in a random studio: room, close, overhead "
        "and room microphones, tuning and balance (default 0: dry kits)"
    ),
    "--dynamics-prob": (
        "play this share of renders with the kit's velocity response reshaped: "
        "soft hits up to 19 dB softer (or 4 dB louder) than the kit plays them, "
        "full hits as they are (default 0)"
    ),
    "--buzz-prob": (
        "play this share of renders with the snare's wires buzzing after each "
        "tom (and in half of them each kick), 12-30 dB under the hit, as on a real "
        "kit (default 0)"
    ),
    "--drop-prob": (
        "leave out, in this share of train-split renders, notes of each drum "
        "(a fifth of the drums all of theirs, the others up to half) from audio and "
        "labels, so a model listens instead of guessing from the groove (default 0)"
    ),
    "--fader-prob": (
        "mix this share of renders with each instrument family (kick, snare, "
        "hi-hat, each tom, crashes, ride) at its own level, 6 dB (standard deviation, "
        "at most 12) around the kit's own, as engineers mix a kit differently "
        "(default 0)"
    ),
    "--tom-tune-prob": (
        "tune the toms of this share of the renders not in a studio as a set, 3 "
        "semitones down to 9 up (each tom within 1 of the others' offset), as "
        "drummers tune them; studio renders always do (default 0)"
    ),
}


def _add_kit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kits",
        nargs="+",
        default=["synth:1", "synth:2", "synth:3"],
        metavar="KIT",
        help="synth:SEED, sf:NAME[:PRESET], sfz:PATH (a .sfz file or a folder of "
        "per-microphone .sfz files), virtual:SEED, a Hydrogen kit name, or a "
        "drumkit folder (default: 3 synth kits)",
    )
    p.add_argument(
        "--kits-per-performance",
        type=int,
        metavar="K",
        help="render each performance through K kits drawn from --kits (default: all)",
    )
    for flag, text in RENDER_SHARES.items():
        p.add_argument(flag, type=float, default=0.0, metavar="P", help=text)
    p.add_argument(
        "--studio-toms",
        choices=["set", "each"],
        default="set",
        help="how the studio tunes a kit's toms: as a set, 3 semitones down to 9 up "
        "(default), or each alone by up to 3 either way, as it did before 2026-12-07 "
        "(the model card's held-out set was rendered so)",
    )


def _add_preprocess(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "preprocess",
        parents=[common],
        help="E-GMD -> memory-mapped training store",
        description="Resample E-GMD audio and convert its MIDI into the processed "
        "store (one folder per split). Resumable; the raw dataset is only read.",
    )
    p.add_argument(
        "--split",
        nargs="+",
        choices=["train", "validation", "test"],
        default=["train", "validation", "test"],
        help="splits to build (default: all)",
    )
    p.add_argument(
        "--limit", type=int, metavar="N", help="at most N recordings per split"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: CPU count)",
    )
    p.add_argument(
        "--allow-skips",
        action="store_true",
        help="exit 0 even when some recordings were skipped",
    )
    p.set_defaults(func=cmd_preprocess)


def _add_train(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "train",
        parents=[common],
        help="train the CRNN (AMP, accumulation, resume, DDP)",
        description="Train on the processed store; checkpoints and TensorBoard logs go "
        "under storage.checkpoint_dir/RUN and storage.log_dir/RUN. "
        "Works under torchrun.",
    )
    p.add_argument(
        "--run",
        "--run-name",
        dest="run",
        metavar="NAME",
        help="run name (default: a timestamp); under torchrun spell it --run-name, "
        "since torchrun takes --run for its own --run-path",
    )
    p.add_argument(
        "--resume",
        metavar="auto|PATH",
        help="continue a run: 'auto' takes last.pt of --run, or give a checkpoint path",
    )
    p.set_defaults(func=cmd_train)


MODEL_SPEC = "PATH|RUN|newest|shipped"
EVALUATE_MODEL_HELP = (
    "model to evaluate: a .pt file, a run under storage.checkpoint_dir (its best.pt), "
    "newest or shipped (default: the newest run's best.pt, else the shipped model)"
)


def _add_evaluate(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="per-class onset F1 on a processed split",
        description="Onset precision, recall and F1 per class at +-50 ms (mir_eval), "
        "micro and macro F1, the adtof5 reduction, velocity-aware F1 and a per-kit "
        "breakdown; where the store has backing tracks, also with the drums mixed "
        "into them.",
    )
    p.add_argument("--checkpoint", metavar=MODEL_SPEC, help=EVALUATE_MODEL_HELP)
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "validation", "test"],
        help="split to score (default: test)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (off a terminal: no line every 30 s)",
    )
    p.add_argument(
        "--tune-thresholds",
        action="store_true",
        help="pick per-class thresholds on the validation split "
        "and store them in the model",
    )
    p.add_argument(
        "--tune-objective",
        default="micro",
        choices=["micro", "class"],
        help="what --tune-thresholds maximises: micro F1 over all classes "
        "(default), or each class's own F1 (favours rare classes, costs micro F1)",
    )
    p.add_argument(
        "--backing-db",
        default="6,0",
        metavar="DB,...|none",
        help="also score the drums mixed with their backing tracks at these "
        "drums-to-music levels in dB, where the store has them (default: 6,0)",
    )
    p.add_argument(
        "--music-dir",
        type=Path,
        metavar="DIR",
        help="mix real music instead: a held-out split of the real-music pool "
        "(tools/build_music_pool.py, e.g. .../music/test); each recording hears a "
        "fixed excerpt chosen by its name",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N recordings")
    p.add_argument("-d", "--device", choices=["auto", "cpu", "cuda"], default=None,
                   help=DEVICE_HELP)  # fmt: skip
    p.set_defaults(func=cmd_evaluate)


def _add_transcribe(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "transcribe",
        parents=[common],
        help="drum audio -> <stem>.drums.mid",
        description="Transcribe drum audio (wav, flac, ogg, opus, aiff, caf, au, mp3; "
        "any rate and channel count) into MIDI on channel 10, with the tempo map and "
        "bars found in the drums. Existing outputs are never overwritten unless asked.",
    )
    p.add_argument(
        "inputs", nargs="*", type=Path, metavar="INPUT", help="files or folders"
    )
    p.add_argument(
        "-o", "--out-dir", type=Path, metavar="DIR", help="write outputs here"
    )
    p.add_argument(
        "-r", "--recursive", action="store_true", help="descend into folders"
    )
    _add_transcribe_outputs(p)
    _add_transcribe_model(p)
    p.add_argument("-d", "--device", choices=["auto", "cpu", "cuda"], default=None,
                   help=DEVICE_HELP)  # fmt: skip
    p.add_argument(
        "--segment", type=float, metavar="SEC",
        help="audio per model call, seconds; memory does not grow past it "
        "(default transcribe.segment_sec = 30)",
    )  # fmt: skip
    p.add_argument(
        "--overlap", type=float, metavar="SEC",
        help="context heard on each side of a segment, then cropped away, seconds "
        "(default transcribe.overlap_sec = 2; at least 0.5)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=int, metavar="N",
        help="segments per model call (default transcribe.batch_size = 4)"
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="X|CLASS=X",
        help="onset threshold for all classes, or CLASS=X for one (repeatable)",
    )
    p.add_argument(
        "--drum-map", metavar="gm|FILE.toml", help="class -> output note map"
    )
    p.add_argument("--velocity", metavar="predicted|fixed:N", help="velocity of notes")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs"
    )
    mode.add_argument("--skip-existing", action="store_true",
                      help="keep existing outputs, write only the missing formats")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary to stdout (with --list-models: the "
                   "listing)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_transcribe)


def _add_transcribe_model(p: argparse.ArgumentParser) -> None:
    """Which model transcribe uses."""
    p.add_argument(
        "--checkpoint",
        metavar=MODEL_SPEC,
        help="model: a .pt file, a run under storage.checkpoint_dir (its best.pt), "
        "newest (the newest run's) or shipped (default: transcribe.checkpoint, "
        "shipped unless set)",
    )
    p.add_argument(
        "--list-models",
        action="store_true",
        help="list the shipped model and trained runs, and say which one is used",
    )


def _add_transcribe_outputs(p: argparse.ArgumentParser) -> None:
    """What transcribe writes: formats, tempo map, grid, picture."""
    p.add_argument(
        "-f",
        "--format",
        dest="formats",
        metavar="mid,csv,json,musicxml,png|all",
        help="output formats (default: transcribe.formats = mid; all: all but png)",
    )
    p.add_argument(
        "--tempo",
        type=float,
        metavar="BPM",
        help="write this constant tempo (bars still start on the downbeats found)",
    )
    p.add_argument(
        "--quantize",
        metavar="|".join((*QUANTIZE_CHOICES[1:], "off")),
        help="snap hits to this grid in every output (default off; MusicXML: 1/16)",
    )
    p.add_argument(
        "--meter",
        metavar="|".join(METER_CHOICES),
        help="the bars' meter (default auto: 4/4, 3/4 or 6/8 found in the drums)",
    )
    p.add_argument(
        "--plot", action="store_true", help="also draw <stem>.drums.png (matplotlib)"
    )


def _add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole path on a fresh machine, no dataset needed",
        description="Make a small dataset with synthesised kits, doctor, preprocess, "
        "train the tiny model on CPU for a few minutes, evaluate, and transcribe "
        "a held-out clip.",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-data"),
        metavar="DIR",
        help="self-contained data root (default: ./demo-data); rerunning reuses it",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=4.0,
        metavar="MIN",
        help="training time budget in minutes (default 4)",
    )
    p.set_defaults(func=cmd_demo)


# --- configuration shared by every command -------------------------------------------


def load_cli_config(args: argparse.Namespace):
    """Config from --config/--profile/--set, then $DRUMTX_DATA_ROOT, then --data-root.
    """
    from drumtx.config import default_config_path, load_config

    path = args.config if args.config is not None else default_config_path()
    overrides = list(args.overrides)
    env_root = os.environ.get("DRUMTX_DATA_ROOT")
    if env_root:
        overrides.append(f"storage.data_root={_toml_string(env_root)}")
    if args.data_root is not None:
        overrides.append(f"storage.data_root={_toml_string(str(args.data_root))}")
    return load_config(path, overrides, args.profile), path


def _toml_string(text: str) -> str:
    return (
        "'" + text + "'" if "'" not in text else '"' + text.replace("\\", "\\\\") + '"'
    )


# --- subcommands ---------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from drumtx.doctor import run_doctor

    cfg, path = load_cli_config(args)
    return run_doctor(
        cfg, config_path=path, deep=args.deep, as_json=args.json, profile=args.profile
    )


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from drumtx.make_dataset import make_dataset

    make_dataset(
        make_dataset_root(args),
        midi_dir=args.midi_dir,
        kits=args.kits,
        limit=args.limit,
        seed=args.seed,
        max_sec=args.max_sec,
        splits=args.splits,
        kits_per_performance=args.kits_per_performance,
        studio_prob=args.studio_prob,
        dynamics_prob=args.dynamics_prob,
        buzz_prob=args.buzz_prob,
        drop_prob=args.drop_prob,
        fader_prob=args.fader_prob,
        tom_tune_prob=args.tom_tune_prob,
        studio_toms=args.studio_toms,
    )
    return 0


def make_dataset_root(args: argparse.Namespace) -> Path:
    """OUT_DIR, else the data root every other command reads (--data-root first)."""
    if args.out_dir is not None and args.data_root is not None:
        if args.out_dir.resolve() != args.data_root.resolve():
            raise ConfigError(
                f"two data roots to write into: OUT_DIR {args.out_dir} and "
                f"--data-root {args.data_root}",
                hint="give one of them",
            )
    if args.out_dir is not None:
        return args.out_dir
    cfg, _ = load_cli_config(args)
    from drumtx.make_dataset import EGMD_DIR_NAME
    from drumtx.storage import resolve_roots

    roots = resolve_roots(cfg)
    if roots.egmd_dir != roots.data_root / EGMD_DIR_NAME:
        raise ConfigError(
            f"make-dataset writes DATA_ROOT/{EGMD_DIR_NAME}, and storage.egmd_dir "
            f"points elsewhere ({roots.egmd_dir}): preprocess would not read it",
            hint="give the folder that holds storage.egmd_dir as OUT_DIR, or leave "
            "storage.egmd_dir at its default",
        )
    return roots.data_root


def cmd_preprocess(args: argparse.Namespace) -> int:
    from drumtx.preprocess import run_preprocess

    cfg, _ = load_cli_config(args)
    return run_preprocess(
        cfg,
        splits=args.split,
        limit=args.limit,
        workers=args.workers,
        allow_skips=args.allow_skips,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from drumtx.train import run_train

    cfg, _ = load_cli_config(args)
    return run_train(cfg, run_name=args.run, resume=args.resume)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from drumtx.evaluate import run_evaluate

    cfg, _ = load_cli_config(args)
    return run_evaluate(
        cfg,
        checkpoint=args.checkpoint,
        split=args.split,
        as_json=args.json,
        tune_thresholds=args.tune_thresholds,
        tune_objective=args.tune_objective,
        limit=args.limit,
        device=args.device,
        backing_db=parse_levels(args.backing_db),
        music_dir=args.music_dir,
        progress=not args.no_progress,
    )


def parse_levels(text: str) -> tuple[float, ...]:
    """``"6,0"`` -> (6.0, 0.0); ``"none"`` -> ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--backing-db {text!r}: expected levels in dB separated by commas",
            hint="e.g. --backing-db 6,0 or --backing-db none",
        ) from None


def cmd_transcribe(args: argparse.Namespace) -> int:
    from drumtx.transcribe import TranscribeOptions, run_transcribe

    cfg, _ = load_cli_config(args)
    opts = TranscribeOptions(
        inputs=tuple(args.inputs),
        out_dir=args.out_dir,
        recursive=args.recursive,
        checkpoint=args.checkpoint,
        thresholds=tuple(args.threshold),
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
        as_json=args.json,
        progress=not args.no_progress,
        list_models=args.list_models,
        device=args.device,
        segment_sec=args.segment,
        overlap_sec=args.overlap,
        batch_size=args.batch_size,
        drum_map=args.drum_map,
        velocity=args.velocity,
        formats=args.formats,
        tempo=args.tempo,
        quantize=args.quantize,
        meter=args.meter,
        plot=args.plot,
    )
    return run_transcribe(cfg, opts)


def cmd_demo(args: argparse.Namespace) -> int:
    from drumtx.demo import run_demo

    if not 0 < args.minutes <= 24 * 60:  # 0 would be train.time_limit_min's "no limit"
        raise ConfigError(
            f"--minutes {args.minutes:g}: the demo trains for a positive time, "
            "at most a day",
            hint="e.g. --minutes 4 (the default) or --minutes 1 for a first look",
        )
    cfg, path = load_cli_config(args)
    return run_demo(cfg, demo_dir=args.dir, minutes=args.minutes, config_path=path)


# Options whose value may start with a minus sign: argparse takes "-6,0" for an option
# (only a bare number like "-6" passes as a value), so such a value is joined to its
# option as "--backing-db=-6,0" before parsing.
SIGNED_VALUE_OPTIONS = ("--backing-db",)


def join_signed_values(argv: Sequence[str]) -> list[str]:
    """``[..., "--backing-db", "-6,0"]`` -> ``[..., "--backing-db=-6,0"]``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        signed = len(value) > 1 and value[0] == "-" and value[1] in "0123456789."
        if argv[i] in SIGNED_VALUE_OPTIONS and signed:
            out.append(f"{argv[i]}={value}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = join_signed_values(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(words)
    if extra:  # told by the command that was misused, with its usage and options
        command = parser.commands[args.command]
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a reader gone shows here, not at the interpreter's exit
        return code
    except DrumtxError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `drumtx ... | head`: the reader has what it wanted. Stop quietly, as cat
        # does, with the status a process killed by SIGPIPE has.
        silence_stdout()
        return 141


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind sys.stdout
        pass


def print_error(exc: DrumtxError) -> None:
    """``error: ...`` and ``hint: ...`` on stderr, user text escaped for rich."""
    from rich.markup import escape

    from drumtx.console import make_console

    console = make_console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        console.print(f"[yellow]hint:[/] {escape(exc.hint)}")
