"""The hand-written training loop: AMP, accumulation, resume, TensorBoard, torchrun.

``train()`` reads top to bottom like nanoGPT's: build, maybe resume, then one loop
that evaluates and saves on eval steps and runs one optimizer step per pass. It loops
``max_steps + 1`` times so the final step is evaluated and saved. SIGINT and SIGTERM
only raise a flag; the loop reads it between optimizer steps, saves, and returns 130.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drumtx.checkpoint import load_checkpoint, model_config, run_dirs, step_numbers
from drumtx.config import MODEL_TABLES, Config
from drumtx.data import cpu_share, loader_workers, make_loader, open_store
from drumtx.distributed import (
    Dist,
    RunClock,
    StopSignals,
    agree_on_run_name,
    agree_to_stop,
    barrier,
    gather_objects,
    init_distributed,
    shutdown,
)
from drumtx.drums import Vocab, get_vocab
from drumtx.errors import ConfigError
from drumtx.inference import LoadedModel, resolve_device
from drumtx.model import count_parameters
from drumtx.processed import (
    ORDER_CSV,
    ORDER_SHUFFLED,
    PREPROCESS_HINT,
    Store,
    read_manifest,
    recording_hits,
    spread_indices,
)
from drumtx.schedule import Schedule, resumed_schedule
from drumtx.scoring import score_store
from drumtx.storage import Roots, require_roots
from drumtx.train_log import (
    StepMeter,
    TrainProgress,
    hours_per_step,
    log,
    log_scalars,
    log_validation,
    open_writer,
)
from drumtx.train_state import (
    CHECKPOINT_BYTES_GUESS,
    TrainState,
    keep_better_best,
    resolve_resume,
    restore,
    rng_state,
    save_training,
    seed_rank,
)
from drumtx.train_step import (
    BadSteps,
    TrainParts,
    build_parts,
    optimizer_step,
    recording_loss,
    wrap_model,
)

VAL_MIX_DB = 0.0  # validation also hears the drums mixed into their backing, this loud
VAL_MIX = "0 dB"


def run_train(cfg: Config, *, run_name: str | None, resume: str | None) -> int:
    """CLI entry: check storage, pick the run directory, train. Returns an exit code."""
    dist = init_distributed()
    try:
        roots = require_roots(
            cfg,
            read=("processed_dir",),
            write=("checkpoint_dir", "log_dir"),
            create=("checkpoint_dir", "log_dir"),
            need_bytes={
                "checkpoint_dir": (cfg.train.keep_checkpoints + 3)
                * CHECKPOINT_BYTES_GUESS
            },
        )
        if resume == "auto" and run_name is None:
            raise ConfigError(
                "--resume auto needs the run's name: without --run a new run is named "
                "from the clock, and has nothing to resume",
                hint=f"{'--run-name' if dist.enabled else '--run'} NAME --resume auto"
                f"{runs_to_resume(roots.checkpoint_dir)}",
            )
        run_name = agree_on_run_name(run_name, dist)
        run_dir, log_dir = roots.checkpoint_dir / run_name, roots.log_dir / run_name
        resume_path = resolve_resume(resume, run_dir)
        if resume == "auto" and resume_path is None:
            log(
                dist,
                f"--resume auto: run {run_name} has no last.pt yet, so it starts at "
                f"step 0{runs_to_resume(roots.checkpoint_dir)}",
            )
        with StopSignals() as stop:
            code = train(cfg, roots, run_dir, log_dir, resume_path, dist, stop)
        # Every rank done with its last collective before any tears the group down:
        # a rank that exits while another is still in gloo can abort it.
        barrier(dist)
        return code
    finally:
        shutdown(dist)


def continue_command(run_name: str, dist: Dist) -> str:
    """The command that continues a run; torchrun's for a run of several ranks."""
    if dist.world_size > 1:
        return (
            f"torchrun --nproc-per-node N -m drumtx train --run-name {run_name} "
            "--resume auto"
        )
    return f"python -m drumtx train --run {run_name} --resume auto"


def runs_to_resume(checkpoint_dir: Path) -> str:
    """``" (runs with a last.pt: a, b)"``, or "" when there are none."""
    names = [r.name for r in run_dirs(checkpoint_dir) if (r / "last.pt").is_file()]
    return f" (runs with a last.pt: {', '.join(names)})" if names else ""


def lr_at(step: int, cfg: Config) -> float:
    """The learning rate at ``step`` of a run started with ``cfg``; a pure function."""
    return Schedule.from_config(cfg).lr_at(step)


def train(
    cfg: Config,
    roots: Roots,
    run_dir: Path,
    log_dir: Path,
    resume_path: Path | None,
    dist: Dist,
    stop: StopSignals,
) -> int:
    # 1. Build. On resume the model-shaping config comes from the checkpoint, and the
    # schedule too unless train.resume_schedule says otherwise (drumtx/schedule.py).
    saved = load_checkpoint(resume_path) if resume_path else None
    cfg, state, notes, init = start_state(cfg, saved)
    vocab = get_vocab(cfg.data.vocab)
    parts = build_parts(cfg, train_device(cfg, dist), vocab.n_classes)
    seed_rank(cfg.train.seed, dist.rank)  # same initial weights, dropout per rank
    load_initial_weights(parts, init, dist)  # train.init_from: fine-tuning

    # 2. Resume: weights, optimizer, scaler, step, best score, history, rank's RNG.
    if saved is not None:
        restore(saved, parts, state, dist.rank)
        for note in [f"resumed from {resume_path} at step {state.step}", *notes]:
            log(dist, note)
    wrap_model(parts, dist)  # torch.compile and DDP, around the restored weights
    run = Run.open(cfg, roots, run_dir, log_dir, dist, parts, state, vocab)
    loader = train_loader(cfg, roots, vocab.n_classes, state.step, dist, parts.device)
    meter = StepMeter(hours_per_step(cfg, dist.world_size))
    next_batch = meter.timed(iter(loader))
    bad_steps = BadSteps(cfg.train.max_bad_steps)
    first_step = state.step

    # 3. The loop.
    with run:
        while True:
            step = state.step
            interrupted, out_of_time = agree_to_stop(stop, run.clock, dist)
            if interrupted:  # between two steps: weights and step number agree
                return run.save_interrupted()
            last_step = step >= cfg.train.max_steps or out_of_time
            if run.is_eval_step(step, last_step):
                with meter.paused():  # not training time
                    run.evaluate_and_save(step)
            if last_step:
                break

            lr = state.schedule.lr_at(step)
            try:
                result = optimizer_step(parts, next_batch, lr)
            except RuntimeError as exc:
                if not stopped_mid_step(exc, stop, parts):
                    raise
                # weights as the last whole step left them
                return run.save_interrupted()
            bad_steps.check(result, step)
            state.step += 1
            meter.step_done(result.loss, result.grad_norm)
            if state.step % cfg.train.log_every == 0 or state.step == first_step + 1:
                run.log_step(state.step, meter.scalars(lr))
    run.report()
    return 0


def start_lines(
    cfg: Config,
    parts: TrainParts,
    step: int,
    run_dir: Path,
    log_dir: Path,
    dist: Dist,
) -> list[str]:
    """What a run is before its first step line: network, device, steps, folders."""
    ranks = f" x {dist.world_size} ranks" if dist.world_size > 1 else ""
    params = count_parameters(parts.model) / 1e6
    lines = [
        f"run {run_dir.name}: the {cfg.model.preset} model ({params:.2f} M "
        f"parameters, data.vocab {cfg.data.vocab}) on {parts.device}{ranks}, steps "
        f"{step} -> {cfg.train.max_steps}",
        f"  checkpoints {run_dir}, TensorBoard logs {log_dir}",
    ]
    if parts.device.type == "cpu" and cfg.model.preset in ("medium", "base"):
        lines.append(
            f"note: the {cfg.model.preset} model is meant for a GPU (one step of the "
            "base model at the default batch took about a minute on a 2-core CPU); a "
            "first look on a CPU: --profile quick (the tiny model)"
        )
    return lines


def stopped_mid_step(exc: RuntimeError, stop: StopSignals, parts: TrainParts) -> bool:
    """A stop signal came and, a step taking longer than the loader workers' grace
    (data.WORKER_STOP_GRACE_SEC: a slow CPU, a busy machine), a worker ended before the
    step did. The weights are whole unless the optimizer was updating them."""
    worker_gone = "DataLoader worker" in str(exc)
    return stop.requested and worker_gone and not parts.updating


def start_state(
    cfg: Config, saved: dict[str, Any] | None
) -> tuple[Config, TrainState, list[str], dict[str, Any] | None]:
    """The config and schedule a run trains with, the lines a resume prints, and a new
    run's initial weights (train.init_from, whose network shape the config takes)."""
    if saved is None:
        init = initial_weights(cfg)
        cfg = cfg if init is None else model_config(cfg, init)
        return cfg, TrainState(schedule=Schedule.from_config(cfg)), [], init
    schedule, notes = resumed_schedule(cfg, saved)
    kept = model_config(cfg, saved)
    return kept, TrainState(schedule=schedule), notes + network_kept(cfg, kept), None


def network_kept(asked: Config, kept: Config) -> list[str]:
    """One line for each network setting a resume cannot apply: the run goes on with
    its checkpoint's audio, frontend, model and data.vocab whatever the config says.
    A fine-tuning run (train.init_from) took its network from its initial weights, not
    from the config, in the first place: nothing to say."""
    if asked.train.init_from:
        return []
    asked_d, kept_d = asked.to_dict(), kept.to_dict()
    keys = [(t, k) for t in MODEL_TABLES for k in asked_d[t]] + [("data", "vocab")]
    return [
        f"resume: {t}.{k} = {asked_d[t][k]!r} is not applied: a run keeps its "
        f"network ({t}.{k} = {kept_d[t].get(k)!r}); to train another, start a new run"
        for t, k in keys
        if asked_d[t][k] != kept_d[t].get(k)
    ]


def load_initial_weights(
    parts: TrainParts, init: dict[str, Any] | None, dist: Dist
) -> None:
    if init is not None:
        parts.model.load_state_dict(init["model"])
        log(dist, f"initial weights from {parts.cfg.train.init_from} (train.init_from)")


def initial_weights(cfg: Config) -> dict[str, Any] | None:
    """The checkpoint train.init_from names (its weights start a fine-tuning run), or
    None; "shipped" is the model drumtx ships."""
    from drumtx.checkpoint import SHIPPED_MODELS_DIR

    name = cfg.train.init_from
    if not name:
        return None
    path = SHIPPED_MODELS_DIR / "default.pt" if name == "shipped" else Path(name)
    return load_checkpoint(path.expanduser())


def train_loader(
    cfg: Config,
    roots: Roots,
    n_classes: int,
    step: int,
    dist: Dist,
    device: torch.device,
) -> torch.utils.data.DataLoader:
    """This rank's crops, seeded by (seed, step, rank, worker): a resumed run draws
    fresh ones."""
    train_dir = roots.processed_dir / "train"
    note_store_order(train_dir, dist)
    workers = loader_workers(cfg.data.num_workers)
    if workers < cfg.data.num_workers:
        log(dist, f"note: data.num_workers = {cfg.data.num_workers} is more than "
            f"this process's share of the CPUs ({cpu_share()}), so each process's "
            f"batches come from {workers}")  # fmt: skip
    return make_loader(
        cfg,
        train_dir,
        n_classes,
        seed=cfg.train.seed + 7919 * step,
        rank=dist.rank,
        world_size=dist.world_size,
        pin_memory=device.type == "cuda",
    )


def note_store_order(train_dir: Path, dist: Dist) -> None:
    """A train store in the CSV's order (made before preprocess shuffled it) trains,
    but each batch hears few drummers and sessions: say so."""
    manifest = read_manifest(train_dir)
    if manifest is not None and manifest.get("order", ORDER_CSV) != ORDER_SHUFFLED:
        log(
            dist,
            f"note: {train_dir} keeps the E-GMD CSV order, so a batch hears few "
            f"drummers and sessions; rebuild it shuffled: {PREPROCESS_HINT} --split "
            "train",
        )


def train_device(cfg: Config, dist: Dist) -> torch.device:
    """train.device, this rank's GPU under torchrun; train.cpu_threads on the CPU."""
    device = resolve_device(cfg.train.device)
    if device.type == "cpu" and cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    if device.type == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return device


@dataclass
class Run:
    """One training run's surroundings: where it saves, what it logs, what it scores."""

    cfg: Config
    run_dir: Path
    log_dir: Path
    dist: Dist
    parts: TrainParts
    state: TrainState
    vocab: Vocab
    val_store: Store
    val_indices: list[int]
    writer: Any  # a SummaryWriter on rank 0, None elsewhere
    progress: TrainProgress
    clock: RunClock

    @classmethod
    def open(
        cls,
        cfg: Config,
        roots: Roots,
        run_dir: Path,
        log_dir: Path,
        dist: Dist,
        parts: TrainParts,
        state: TrainState,
        vocab: Vocab,
    ) -> Run:
        val_store = open_store(cfg, roots.processed_dir / "validation")
        n_val = len(val_store.recordings)
        state.abandoned = frozenset(n for n in step_numbers(run_dir) if n > state.step)
        kept_best = keep_better_best(run_dir, state)
        if kept_best:
            log(dist, kept_best)
        clock = RunClock(cfg.train.time_limit_min)
        for line in start_lines(cfg, parts, state.step, run_dir, log_dir, dist):
            log(dist, line)
        return cls(
            cfg=cfg,
            run_dir=run_dir,
            log_dir=log_dir,
            dist=dist,
            parts=parts,
            state=state,
            vocab=vocab,
            val_store=val_store,
            val_indices=spread_indices(n_val, cfg.train.val_max_recordings),
            writer=open_writer(cfg, log_dir, run_dir, dist, resumed_at=state.step),
            progress=TrainProgress(cfg, dist, state.step, clock),
            clock=clock,
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        self.progress.close()

    def is_eval_step(self, step: int, last_step: bool) -> bool:
        """Due (every eval_every, and the last step), and not validated already: a run
        resumed from a save made at an eval step has its result in the history."""
        due = step % self.cfg.train.eval_every == 0 or last_step
        return due and step > 0 and step != self.state.evaluated_step

    def evaluate_and_save(self, step: int) -> None:
        """Rank 0 validates, logs and saves; the other ranks wait at a barrier."""
        rngs = gather_objects(rng_state(), self.dist)  # every rank's, for its resume
        if self.dist.is_main:
            metrics = self.validate()
            log_validation(self.writer, metrics, step, self.vocab.codes)
            improved = self.state.record(step, metrics["score"])
            save_training(
                self.cfg, self.run_dir, self.parts, self.state, improved, rngs
            )
            mixed = metrics.get("mixes", {}).get(VAL_MIX)
            self.progress.note(
                f"step {step}: val micro-F1 {metrics['micro_f1']:.3f}"
                + (f", mixed at {VAL_MIX} {mixed['micro_f1']:.3f}" if mixed else "")
                + f" (score {metrics['score']:.3f}, "
                + f"best {self.state.best_score:.3f}), val loss {metrics['loss']:.4f}"
            )
        barrier(self.dist)

    def validate(self) -> dict[str, Any]:
        """Score the validation recordings with the plain model, under train.amp: the
        drums alone and, where the store has backing tracks, mixed into them at 0 dB.
        ``score``, which picks best.pt, is the mean of the two (or the first alone)."""
        p = self.parts
        loaded = LoadedModel(
            p.model,
            p.frontend,
            self.cfg,
            self.vocab,
            {},
            "training",
            p.device,
            amp=self.cfg.train.amp,
        )
        p.model.eval()
        try:
            metrics = score_store(
                loaded,
                self.val_store,
                self.val_indices,
                picture=True,
                loss=self.recording_loss,
            )
            metrics["score"] = metrics["micro_f1"]
            if self.val_store.backing is not None:
                mixed = score_store(
                    loaded, self.val_store, self.val_indices, backing_db=VAL_MIX_DB
                )
                metrics["mixes"] = {VAL_MIX: mixed}
                metrics["score"] = (metrics["micro_f1"] + mixed["micro_f1"]) / 2
            return metrics
        finally:
            p.model.train()

    def recording_loss(
        self, index: int, onset: np.ndarray, velocity: np.ndarray
    ) -> tuple[float, int]:
        hits = recording_hits(self.val_store, index)
        return recording_loss(self.parts, hits, onset, velocity)

    def save_interrupted(self) -> int:
        rngs = gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            save_training(self.cfg, self.run_dir, self.parts, self.state, False, rngs)
        self.progress.note(
            f"interrupted at step {self.state.step}; saved {self.run_dir / 'last.pt'}; "
            f"continue with: {continue_command(self.run_dir.name, self.dist)} (and the "
            "same --profile/--set)"
        )
        return 130

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        log_scalars(self.writer, scalars, step)
        self.progress.update(step, scalars)

    def report(self) -> None:
        self.progress.close()
        if self.dist.is_main:
            print(f"checkpoints: {self.run_dir}")
            print(f"logs:        {self.log_dir}")
            # val/score: micro-F1, averaged with the 0 dB mix
            # where the store has backing
            print(f"best validation score: {self.state.best_score:.3f}")
