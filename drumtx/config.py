"""drumtx.toml -> frozen dataclasses, with profiles and ``--set table.key=value``
overrides.

Defaults live here and only here; drumtx.toml documents them and may change them.
Order of application: dataclass defaults < drumtx.toml < [profiles.NAME] < --set.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drumtx.drums import VOCABS
from drumtx.errors import ConfigError
from drumtx.meter import METER_CHOICES, QUANTIZE_CHOICES, TEMPO_LIMITS_BPM

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PRESETS = ("tiny", "small", "medium", "base")
VOCAB_NAMES = ("roland9", "adtof5", "basic3")
AMP_MODES = ("auto", "bf16", "fp16", "off")
RESUME_SCHEDULES = ("keep", "new")
DEVICES = ("auto", "cpu", "cuda")
CPU_PRECISIONS = ("auto", "fp32", "bf16")
# Context each side of a transcription segment. The conv stack and the STFT window
# see ~0.1 s; the GRU sees the whole segment, and on the shipped model the error at a
# border stops shrinking past ~0.3 s of context (0 s: off by up to 0.85 in probability).
MIN_OVERLAP_SEC = 0.5


def exact_div(numerator: int, denominator: int) -> int:
    """numerator / denominator, refusing a remainder (a silently truncated rate drifts).
    """
    if numerator % denominator:
        raise ConfigError(
            f"{numerator} is not a multiple of {denominator}",
            hint="choose audio.sample_rate divisible by frontend.fps",
        )
    return numerator // denominator


@dataclass(frozen=True)
class StorageConfig:
    # The HDD data root; sub-directories are relative to it unless absolute.
    data_root: str = "/mnt/hdd/drum-tranxn"
    egmd_dir: str = "e-gmd-v1.0.0"  # raw dataset, read-only to drumtx
    processed_dir: str = "processed_data"
    checkpoint_dir: str = "checkpoints"
    log_dir: str = "logs"


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 24000  # Hz, of the processed store and the model input

    def __post_init__(self) -> None:
        _check_range("audio.sample_rate", self.sample_rate, 8000, 96000)


@dataclass(frozen=True)
class FrontendConfig:
    fps: int = 100  # frames per second; hop = sample_rate / fps
    n_fft: int = 1024  # samples; 43 ms at 24 kHz
    n_mels: int = 128
    f_min_hz: float = 30.0
    f_max_hz: float = 12000.0

    def __post_init__(self) -> None:
        _check_range("frontend.fps", self.fps, 10, 1000)
        _check_range("frontend.n_fft", self.n_fft, 64, 16384)
        _check_range("frontend.n_mels", self.n_mels, 8, 512)
        _check_range("frontend.f_min_hz", self.f_min_hz, 0.0, 20000.0)
        if self.f_max_hz <= self.f_min_hz:
            raise ConfigError(
                f"frontend.f_max_hz ({self.f_max_hz}) must exceed "
                f"frontend.f_min_hz ({self.f_min_hz})",
                hint=_where_set("frontend.f_max_hz"),
            )


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "base"  # tiny (CPU demo, tests) | small | base (GPU)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _check_choice("model.preset", self.preset, PRESETS)
        _check_range("model.dropout", self.dropout, 0.0, 0.9)


@dataclass(frozen=True)
class DataConfig:
    vocab: str = "roland9"  # roland9 | adtof5 | basic3
    max_recordings: int = 0  # per split for preprocess; 0 = all
    crop_sec: float = 10.0  # training crop length
    block_mb: float = 8.0  # contiguous memmap read per block (HDD-friendly)
    crops_per_block: int = 8  # random crops cut from each block
    shuffle_blocks: int = 16  # blocks whose crops are shuffled together
    num_workers: int = 4  # DataLoader worker processes
    cache_in_ram: bool = False  # load the whole store into RAM first
    target_widen_frames: int = 0  # also mark +-N frames around an onset (weight 0.5)
    # Augmentation, applied per crop on the fly.
    gain_db_min: float = -12.0
    gain_db_max: float = 6.0
    # random low/high shelf and peak filters, drawn apart on the drum bus and on the
    # master at eq_prob / 2 each (a crop gets some EQ with 1 - (1 - eq_prob / 2)^2)
    eq_prob: float = 0.5
    noise_prob: float = 0.3  # coloured noise at 20-50 dB SNR
    reverb_prob: float = 0.3  # synthetic room impulse response
    mix_prob: float = 0.0  # sum two crops (different kits) into one example
    # Toward recorded songs (drumtx.augment): the band, the buses and the master.
    backing_prob: float = 0.67  # crops mixed with their backing track, where stored
    backing_db_min: float = -6.0  # drums-to-music level of a mixed crop, dB (RMS)
    backing_db_max: float = 12.0
    # Real non-drum audio (tools/build_music_pool.py): one split of the pool, e.g.
    # /work/music/train, and the share of banded crops that hear it instead of the
    # rendered backing track (the rest keep theirs).
    music_dir: str = ""
    music_prob: float = 0.0
    # Of the crops mixed with a band, those where the drums stop for a while (a break,
    # an intro) and the band plays on: no onsets there, so music alone fires nothing.
    break_prob: float = 0.0
    compress_prob: float = 0.4  # drum-bus and master compression, as eq_prob: p/2 each
    saturate_prob: float = 0.2  # tape-like saturation or hard clipping
    codec_prob: float = 0.1  # an MP3 or Ogg Vorbis round trip
    lowpass_prob: float = 0.0  # the mix band-limited as a low-rate or lossy file is
    rare_class_prob: float = 0.0  # crops centred on a hit of a class drawn uniformly
    loudness_prob: float = 0.0  # crop level set by RMS normalisation, not a gain
    loudness_db_min: float = -26.0  # its targets, dB RMS re full scale
    loudness_db_max: float = -9.0
    # Varispeed: crops played faster or slower, as a tape or a sampler would, so every
    # drum sounds retuned (and its body bigger or smaller) and the groove's tempo
    # follows; the targets move with the hits. At most speed_semitones up or down.
    speed_prob: float = 0.0
    speed_semitones: float = 2.0

    def __post_init__(self) -> None:
        _check_choice("data.vocab", self.vocab, VOCAB_NAMES)
        _check_range("data.max_recordings", self.max_recordings, 0, 10**9)
        _check_range("data.crop_sec", self.crop_sec, 0.5, 120.0)
        _check_range("data.block_mb", self.block_mb, 0.1, 4096.0)
        _check_range("data.crops_per_block", self.crops_per_block, 1, 1024)
        _check_range("data.shuffle_blocks", self.shuffle_blocks, 1, 4096)
        _check_range("data.num_workers", self.num_workers, 0, 256)
        _check_range("data.target_widen_frames", self.target_widen_frames, 0, 5)
        if self.gain_db_min > self.gain_db_max:
            raise ConfigError(
                "data.gain_db_min must not exceed data.gain_db_max",
                hint=_where_set("data.gain_db_min"),
            )
        for name in (
            "eq_prob",
            "noise_prob",
            "reverb_prob",
            "mix_prob",
            "backing_prob",
            "music_prob",
            "break_prob",
            "compress_prob",
            "saturate_prob",
            "codec_prob",
            "lowpass_prob",
            "rare_class_prob",
            "loudness_prob",
            "speed_prob",
        ):
            _check_range(f"data.{name}", getattr(self, name), 0.0, 1.0)
        _check_range("data.speed_semitones", self.speed_semitones, 0.0, 12.0)
        _check_range("data.backing_db_min", self.backing_db_min, -40.0, 60.0)
        _check_range("data.backing_db_max", self.backing_db_max, -40.0, 60.0)
        _check_range("data.loudness_db_min", self.loudness_db_min, -60.0, 0.0)
        _check_range("data.loudness_db_max", self.loudness_db_max, -60.0, 0.0)
        if self.loudness_db_min > self.loudness_db_max:
            raise ConfigError(
                "data.loudness_db_min must not exceed data.loudness_db_max",
                hint=_where_set("data.loudness_db_min"),
            )
        if self.backing_db_min > self.backing_db_max:
            raise ConfigError(
                "data.backing_db_min must not exceed data.backing_db_max",
                hint=_where_set("data.backing_db_min"),
            )
        if self.music_prob > 0 and not self.music_dir:
            raise ConfigError(
                f"data.music_prob = {self.music_prob} needs data.music_dir, the "
                "real-music pool split to draw from",
                hint="python tools/build_music_pool.py --out /work/music, then "
                "--set data.music_dir='/work/music/train'",
            )


@dataclass(frozen=True)
class BackingConfig:
    """Backing tracks that preprocess renders beside each recording (drumtx.synth)."""

    enabled: bool = True  # render one per recording, aligned to its MIDI's tempo map
    # auto: every General MIDI SoundFont under /usr/share/sounds/sf2 and sf3 (reserved
    # evaluation banks excluded), when FluidSynth is installed; none: drumtx's own
    # instruments only; or .sf2/.sf3 paths separated by commas.
    soundfonts: str = "auto"
    songs_dir: str = ""  # full-band MIDI songs whose parts may back a performance
    song_prob: float = 0.35  # share of backing tracks taken from songs_dir
    own_prob: float = 0.4  # share of parts played by drumtx's own instruments
    seed: int = 0

    def __post_init__(self) -> None:
        _check_range("backing.song_prob", self.song_prob, 0.0, 1.0)
        _check_range("backing.own_prob", self.own_prob, 0.0, 1.0)


@dataclass(frozen=True)
class TrainConfig:
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 32  # crops per micro-step
    accum_steps: int = 1  # micro-steps per optimizer step
    max_steps: int = 100_000
    lr: float = 1e-3
    min_lr: float = 1e-5  # cosine schedule floor
    warmup_steps: int = 1000
    weight_decay: float = 0.01
    # On --resume: keep the run's schedule (horizon, lr, min_lr, warm-up) and weight
    # decay and refuse changes to them, or apply this config's (drumtx/schedule.py).
    resume_schedule: str = "keep"  # keep | new
    # Fine-tune: a new run starts from this checkpoint's weights (and takes its network
    # shape and vocabulary); optimizer and schedule start fresh. "shipped" = the model
    # drumtx ships; "" = random initial weights. A resumed run ignores it.
    init_from: str = ""
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    # auto (bf16 if supported, else fp16 on CUDA; off on CPU) | bf16 | fp16 | off;
    # an explicit bf16 or fp16 runs on CPU too.
    amp: str = "auto"
    compile: bool = False  # torch.compile the model
    channels_last: bool = False
    onset_pos_weight: float = 4.0  # BCE weight of onset frames (they are rare)
    # An onset frame's BCE is further weighted by 1 + this x (1 - its velocity target):
    # soft hits (ghost notes, a quiet hi-hat under a snare) count for more. 0 = off.
    soft_onset_weight: float = 0.0
    velocity_weight: float = 0.5
    log_every: int = 50  # steps
    eval_every: int = 2000  # steps; also checkpoints
    keep_checkpoints: int = 3  # step-NNNNNN.pt files kept
    val_max_recordings: int = 64  # 0 = the whole validation split
    max_bad_steps: int = 20  # non-finite losses in a row before the run stops
    time_limit_min: float = (
        0.0  # stop (evaluate, save) after this many minutes; 0 = none
    )
    cpu_threads: int = 0  # torch threads on CPU; 0 = torch's default (all cores)
    seed: int = 1234

    def __post_init__(self) -> None:
        _check_choice("train.device", self.device, DEVICES)
        _check_choice("train.amp", self.amp, AMP_MODES)
        _check_choice("train.resume_schedule", self.resume_schedule, RESUME_SCHEDULES)
        _check_range("train.batch_size", self.batch_size, 1, 65536)
        _check_range("train.accum_steps", self.accum_steps, 1, 4096)
        _check_range("train.max_steps", self.max_steps, 1, 10**9)
        _check_range("train.lr", self.lr, 0.0, 1.0)
        _check_range("train.min_lr", self.min_lr, 0.0, 1.0)
        _check_range("train.warmup_steps", self.warmup_steps, 0, 10**9)
        _check_range("train.weight_decay", self.weight_decay, 0.0, 10.0)
        _check_range("train.grad_clip", self.grad_clip, 0.0, 1e6)
        _check_range("train.onset_pos_weight", self.onset_pos_weight, 0.0, 1000.0)
        _check_range("train.velocity_weight", self.velocity_weight, 0.0, 100.0)
        _check_range("train.soft_onset_weight", self.soft_onset_weight, 0.0, 100.0)
        _check_range("train.log_every", self.log_every, 1, 10**9)
        _check_range("train.eval_every", self.eval_every, 1, 10**9)
        _check_range("train.keep_checkpoints", self.keep_checkpoints, 0, 1000)
        _check_range("train.val_max_recordings", self.val_max_recordings, 0, 10**9)
        _check_range("train.max_bad_steps", self.max_bad_steps, 1, 10**6)
        _check_range("train.time_limit_min", self.time_limit_min, 0.0, 10**7)
        _check_range("train.cpu_threads", self.cpu_threads, 0, 1024)


@dataclass(frozen=True)
class DecodeConfig:
    threshold: float = 0.5  # onset probability, every class without its own
    min_gap_sec: float = 0.03  # between two hits of one class
    # Per-class thresholds by class code, e.g. {KD = 0.4}; tuned ones live in the model.
    class_thresholds: dict = field(default_factory=dict)
    # Class pairs rarely struck at once, "A/B,C/D": of two such hits within min_gap_sec
    # the one whose peak is the smaller multiple of its threshold is dropped (pairs
    # the model's classes lack are left out).
    exclusive: str = "OH/CR,CR/RD"
    # Classes that ring when another is struck, "A<B": a snare's wires buzz under a
    # kick or a tom, and the model hears the buzz as a snare. A peak of A within a frame
    # of B's probability at or above buzz_when counts only at or above buzz_threshold.
    buzz: str = "SD<KD,SD<LT,SD<HT"
    buzz_when: float = 0.5
    buzz_threshold: float = 0.85
    # Drum parts repeat: a peak of a repeat_classes class at or above repeat_floor
    # counts where its class peaks at or above repeat_context (within a frame) one to
    # four pattern periods before or after it (decode.pattern_period: 1-5 s).
    # repeat_floor = 0 turns it off. Not the toms (a band's bass line repeats what the
    # model mistakes for them) nor the hi-hat and ride (they keep time: always repeat).
    repeat_floor: float = 0.35
    repeat_context: float = 0.8
    repeat_classes: str = "KD,SD,OH,CR"

    def __post_init__(self) -> None:
        _check_range("decode.threshold", self.threshold, 0.0, 1.0)
        _check_range("decode.min_gap_sec", self.min_gap_sec, 0.0, 1.0)
        _check_range("decode.buzz_when", self.buzz_when, 0.0, 1.0)
        _check_range("decode.buzz_threshold", self.buzz_threshold, 0.0, 1.0)
        _check_range("decode.repeat_floor", self.repeat_floor, 0.0, 1.0)
        _check_range("decode.repeat_context", self.repeat_context, 0.0, 1.0)
        exclusive_pairs(self.exclusive)  # raises on a malformed pair
        buzz_pairs(self.buzz)
        repeat_codes(self.repeat_classes)
        for code, value in self.class_thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"decode.class_thresholds.{code} must be a number, got {value!r}",
                    hint=f"e.g. --set decode.class_thresholds.{code}=0.5",
                )
            _check_range(f"decode.class_thresholds.{code}", value, 0.0, 1.0)


def exclusive_pairs(text: str) -> list[tuple[str, str]]:
    """decode.exclusive's code pairs: "OH/CR,CR/RD" -> [(OH, CR), (CR, RD)]."""
    return _code_pairs(
        text, "/", "decode.exclusive", '"OH/CR,CR/RD"', '"" keeps every hit'
    )


def buzz_pairs(text: str) -> list[tuple[str, str]]:
    """decode.buzz's pairs, the class that rings first: "SD<KD" -> [(SD, KD)]."""
    return _code_pairs(text, "<", "decode.buzz", '"SD<KD"', '"" turns it off')


def repeat_codes(text: str) -> list[str]:
    """decode.repeat_classes' codes: "KD, sd" -> [KD, SD]."""
    known = {code for vocab in VOCABS.values() for code in vocab.codes}
    codes = [c.strip().upper() for c in str(text).split(",") if c.strip()]
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ConfigError(
            f"decode.repeat_classes names unknown class {unknown[0]!r}",
            hint='class codes separated by commas, e.g. "KD,SD,OH,CR"; '
            '"" applies the repeat rule to no class',
        )
    return codes


def _code_pairs(
    text: str, sep: str, key: str, example: str, off: str
) -> list[tuple[str, str]]:
    known = {code for vocab in VOCABS.values() for code in vocab.codes}
    pairs = []
    for item in filter(None, (p.strip() for p in str(text).split(","))):
        codes = tuple(c.strip().upper() for c in item.split(sep))
        if len(codes) != 2 or codes[0] == codes[1] or not set(codes) <= known:
            raise ConfigError(
                f"{key}: {item!r} is not a pair of two class codes",
                hint=f"e.g. {example} (codes: {' '.join(sorted(known))}); {off}",
            )
        pairs.append((codes[0], codes[1]))
    return pairs


QUANTIZE_GRIDS = QUANTIZE_CHOICES


@dataclass(frozen=True)
class TranscribeConfig:
    # The model: "shipped" (the one inside drumtx), "newest" (best.pt of the newest run
    # under storage.checkpoint_dir), a run's name (its best.pt) or a .pt path.
    # --checkpoint overrides it; a run is never used unless named here or there.
    checkpoint: str = "shipped"
    device: str = "auto"  # auto | cpu | cuda
    segment_sec: float = 30.0  # audio per model call; memory does not grow past it
    overlap_sec: float = 2.0  # context on each side of a segment, cropped away
    batch_size: int = 4  # segments per model call
    drum_map: str = "gm"  # gm, or a TOML file mapping class code -> output note
    velocity: str = "predicted"  # predicted | fixed:N
    note_sec: float = 0.05  # MIDI note length
    formats: str = "mid"  # comma-separated: mid, csv, json, musicxml, png
    tempo: float = 0.0  # BPM of the written tempo map; 0 = found from the drums
    quantize: str = "off"  # off | 1/8 | 1/8T | 1/16 | 1/16T | 1/32
    # auto (4/4, 3/4 or 6/8 from the drums) | 4/4 | 3/4 | 6/8 | 12/8
    meter: str = "auto"
    cpu_precision: str = "auto"  # auto | fp32 | bf16: the CPU's convolution dtype
    # The active levels (dB re full scale; drumtx.levels.active_level_db) the model
    # hears: an input outside them is turned up or down to the nearer one, so a quiet
    # stem and a loud master sound to it like what it trained on; -60 and 0 = as it is.
    min_input_db: float = -36.0
    max_input_db: float = -20.0

    def __post_init__(self) -> None:
        if not self.checkpoint.strip():
            raise ConfigError(
                "transcribe.checkpoint is empty",
                hint='use "shipped", "newest", a run name or a path to a .pt file',
            )
        _check_choice("transcribe.device", self.device, DEVICES)
        _check_choice("transcribe.cpu_precision", self.cpu_precision, CPU_PRECISIONS)
        # the shortest segment the shortest overlap leaves anything of
        _check_range("transcribe.segment_sec", self.segment_sec, 2.0, 3600.0)
        _check_range("transcribe.min_input_db", self.min_input_db, -60.0, 0.0)
        _check_range("transcribe.max_input_db", self.max_input_db, -60.0, 0.0)
        if self.min_input_db > self.max_input_db:
            raise ConfigError(
                f"transcribe.min_input_db = {self.min_input_db:g} is above "
                f"transcribe.max_input_db = {self.max_input_db:g}",
                hint="make min_input_db <= max_input_db (equal: one level for all)",
            )
        if not MIN_OVERLAP_SEC <= self.overlap_sec <= 60.0:
            raise ConfigError(
                f"transcribe.overlap_sec = {self.overlap_sec!r} is out of range; "
                f"expected {MIN_OVERLAP_SEC} to 60.0: without context the hits near "
                "segment borders change",
                hint=f"use --overlap {MIN_OVERLAP_SEC:g} or more (default 2), or "
                "--set transcribe.overlap_sec=2.0",
            )
        if 2 * self.overlap_sec >= self.segment_sec:
            raise ConfigError(
                f"transcribe.overlap_sec ({self.overlap_sec}) must be less than half "
                f"of transcribe.segment_sec ({self.segment_sec})",
                hint="a shorter --overlap or a longer --segment, e.g. --segment 30 "
                "--overlap 2",
            )
        _check_range("transcribe.batch_size", self.batch_size, 1, 1024)
        _check_range("transcribe.note_sec", self.note_sec, 0.001, 10.0)
        if self.tempo != 0.0:
            _check_range("transcribe.tempo", self.tempo, *TEMPO_LIMITS_BPM)
        _check_choice("transcribe.quantize", self.quantize, QUANTIZE_GRIDS)
        _check_choice("transcribe.meter", self.meter, METER_CHOICES)


@dataclass(frozen=True)
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    backing: BackingConfig = field(default_factory=BackingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)

    def __post_init__(self) -> None:
        exact_div(self.audio.sample_rate, self.frontend.fps)
        if self.frontend.f_max_hz > self.audio.sample_rate / 2:
            raise ConfigError(
                f"frontend.f_max_hz ({self.frontend.f_max_hz}) is above Nyquist "
                f"({self.audio.sample_rate / 2} Hz for audio.sample_rate)",
                hint=f"--set frontend.f_max_hz={self.audio.sample_rate / 2} or a "
                "higher audio.sample_rate",
            )

    @property
    def hop_length(self) -> int:
        """Samples between frames: exact, never truncated."""
        return exact_div(self.audio.sample_rate, self.frontend.fps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TABLES = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
# Tables whose shape defines the network; read from a checkpoint, never from the TOML.
MODEL_TABLES = ("audio", "frontend", "model")


def default_config_path() -> Path | None:
    """drumtx.toml in the working directory, else the one beside the package, if any."""
    for candidate in (
        Path.cwd() / "drumtx.toml",
        Path(__file__).parent.parent / "drumtx.toml",
    ):
        if candidate.is_file():
            return candidate
    return None


def load_config(
    path: Path | None = None,
    overrides: Sequence[str] = (),
    profile: str | None = None,
) -> Config:
    """Read a TOML config, apply a profile, then ``table.key=value`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(
            f"[profiles] in {path} must be a table of tables",
            hint="write each profile as [profiles.NAME] followed by its "
            "table.key = value lines",
        )
    tables = _check_tables(raw, source=str(path))
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(
                f"unknown profile {profile!r}" + _suggest(profile, profiles),
                hint=f"profiles defined in {path}: "
                f"{', '.join(sorted(profiles)) or 'none'}",
            )
        for table, values in _check_tables(
            profiles[profile], source=f"[profiles.{profile}]"
        ).items():
            tables.setdefault(table, {}).update(values)
    for text in overrides:
        table, key, value = parse_override(text)
        tables.setdefault(table, {})[key] = value
    return config_from_dict(tables)


def config_from_dict(tables: dict[str, Any]) -> Config:
    """Build a Config from ``{table: {key: value}}``, checking names and types."""
    tables = _check_tables(tables, source="config")
    built = {}
    for name, factory in TABLES.items():
        defaults = factory()
        values = {
            key: _coerce(f"{name}.{key}", getattr(defaults, key), value)
            for key, value in tables.get(name, {}).items()
        }
        built[name] = dataclasses.replace(defaults, **values)
    return Config(**built)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.lr=3e-4"`` -> ("train", "lr", 0.0003); the value is parsed as TOML."""
    name, sep, value_text = text.partition("=")
    table, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(
            f"--set {text!r} is not of the form table.key=value",
            hint="for example: --set train.lr=3e-4 --set storage.data_root='/data'",
        )
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()  # bare words (paths, names) are taken as strings
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(
            f"--set {name.strip()}: the value is nested too deeply",
            hint="give a number, a string, true/false or a flat [list]",
        ) from None
    _check_key(table, key, source="--set")
    return table, key, value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist",
            hint="pass --config PATH, "
            "or run from the drumtx checkout that holds drumtx.toml",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: not UTF-8 text ({exc.reason} at byte "
            f"{exc.start})",
            hint="save it as UTF-8 text, or start from the checkout's drumtx.toml",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            hint="fix the line it names (strings need quotes: preset = \"tiny\"), or "
            "start from the checkout's drumtx.toml",
        ) from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(
            f"{path} is not valid TOML: nested too deeply",
            hint="drumtx.toml holds flat tables of key = value lines",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}",
            hint="check the path and its permissions, or pass --config PATH",
        ) from None


def _check_tables(raw: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for table, values in raw.items():
        if table not in TABLES:
            raise _unknown_table(table, source)
        if not isinstance(values, dict):
            raise ConfigError(
                f"[{table}] in {source} must be a table, got {values!r}",
                hint=f"write [{table}] on a line of its own, then key = value lines",
            )
        for key in values:
            _check_key(table, key, source)
        tables[table] = dict(values)
    return tables


def _unknown_table(table: str, source: str) -> ConfigError:
    return ConfigError(
        f"unknown table [{table}] in {source}" + _suggest(table, TABLES),
        hint=f"tables: {', '.join(TABLES)}",
    )


def _check_key(table: str, key: str, source: str) -> None:
    if table not in TABLES:
        raise _unknown_table(table, source)
    keys = [f.name for f in dataclasses.fields(TABLES[table]())]
    if key not in keys:
        raise ConfigError(
            f"unknown key {table}.{key} in {source}" + _suggest(key, keys),
            hint=f"keys of [{table}]: {', '.join(keys)}",
        )


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Check a value against the type of the field's default; ints widen to floats."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (
        expected is int and isinstance(value, bool)
    ):
        return value
    raise ConfigError(
        f"{name} must be of type {expected.__name__}, got {value!r} "
        f"({type(value).__name__})",
        hint=f"write it as the value it replaces is: --set {name}={_toml(default)}",
    )


def _toml(value: Any) -> str:
    """A value as TOML (and --set) spells it: strings quoted, booleans lower case."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"{name} = {value!r} is out of range; expected {low} to {high}",
            hint=_where_set(name),
        )


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{name} = {value!r} is not one of {', '.join(choices)}"
            + _suggest(value, choices),
            hint=_where_set(name),
        )


WHERE_SET = "the value comes from a command option,"


def _where_set(name: str) -> str:
    """Where a bad value can have come from, for a hint."""
    table, key = name.split(".", 1)
    return (
        f"{WHERE_SET} --set {name}=..., --profile, or "
        f"the [{table}] table's {key} in drumtx.toml (drumtx doctor names the file)"
    )
