"""The training loop on CPU: loss falls, resume continues, interruptions lose
nothing, torchrun."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline import tiny_config
from torch.optim.optimizer import register_optimizer_step_post_hook

from drumtx.checkpoint import load_checkpoint
from drumtx.errors import ConfigError, DrumtxError
from drumtx.train import lr_at, run_train

REPO = Path(__file__).resolve().parents[1]


def _scalars(log_dir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def _adam_steps(state: dict) -> set[float]:
    """AdamW's own step count per parameter: how many updates the weights have had."""
    return {float(s["step"]) for s in state["optimizer"]["state"].values()}


@pytest.fixture
def data_root(made_store: Path, tmp_path: Path) -> Path:
    """A private data root sharing the session's (read-only) processed store."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "processed_data").symlink_to(made_store / "processed_data")
    return root


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny_config(
        Path("/nonexistent"), "train.max_steps=100", "train.warmup_steps=10"
    )
    lrs = [lr_at(s, cfg) for s in range(101)]
    assert lrs[0] < lrs[5] < lrs[9] == pytest.approx(cfg.train.lr)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(cfg.train.min_lr)


def test_tiny_model_loss_falls_and_logs(data_root: Path):
    cfg = tiny_config(
        data_root,
        "train.max_steps=40",
        "train.eval_every=40",
        "train.lr=3e-3",
        "train.warmup_steps=5",
    )
    assert run_train(cfg, run_name="t", resume=None) == 0
    losses = _scalars(data_root / "logs" / "t", "train/loss")
    assert len(losses) >= 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3
    for tag in (
        "train/lr",
        "train/grad_norm",
        "train/audio_hours_per_sec",
        "train/data_wait_fraction",
        "val/f1",
        "val/f1/KD",
        "val/loss",
    ):
        assert _scalars(data_root / "logs" / "t", tag), tag
    _every_tag_is_described(data_root / "logs" / "t")
    _settings_are_in_the_hparams_tab(data_root / "logs" / "t", cfg)
    run_dir = data_root / "checkpoints" / "t"
    assert {"last.pt", "best.pt", "step-000040.pt"} <= {
        p.name for p in run_dir.iterdir()
    }
    best = load_checkpoint(run_dir / "best.pt")
    assert "optimizer" not in best and best["config"]["model"]["preset"] == "tiny"
    assert _adam_steps(load_checkpoint(run_dir / "last.pt")) == {40.0}


def _settings_are_in_the_hparams_tab(log_dir: Path, cfg) -> None:
    """TensorBoard's HParams tab holds the run's settings and names the validation
    scores beside them, so runs compare there without diffing config.json files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from drumtx.train_log import HPARAM_METRICS

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw)
            for tag, raw in content.items()}  # fmt: skip
    start = next(d.session_start_info for d in data.values()
                 if d.HasField("session_start_info"))  # fmt: skip
    assert start.hparams["train.lr"].number_value == pytest.approx(cfg.train.lr)
    assert start.hparams["model.preset"].string_value == "tiny"
    assert start.hparams["data.vocab"].string_value == "roland9"
    assert not any(k.startswith(("storage.", "transcribe.")) for k in start.hparams)
    experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
    named = {m.name.tag for m in experiment.metric_infos}
    assert named == set(HPARAM_METRICS)
    assert named <= set(acc.Tags()["scalars"])  # each is a curve the run logs


def _every_tag_is_described(log_dir: Path) -> None:
    """TensorBoard's Text tab explains every scalar the run logged (TAGS)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from drumtx.train_log import TAG_GUIDE, TAGS

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    logged = acc.Tags()
    patterns = [re.escape(t).replace(re.escape("<class>"), "[A-Z]+") for t, _ in TAGS]
    undescribed = [
        tag for tag in logged["scalars"]
        if not any(re.fullmatch(p, tag) for p in patterns)
    ]  # fmt: skip
    assert not undescribed, undescribed
    texts = [t for t in logged["tensors"] if t.startswith("tags")]
    assert texts, logged["tensors"]
    shown = acc.Tensors(texts[0])[0].tensor_proto.string_val[0].decode()
    assert shown == TAG_GUIDE


def test_existing_run_needs_resume(data_root: Path):
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="r", resume=None) == 0
    with pytest.raises(ConfigError, match="already has checkpoints") as info:
        run_train(cfg, run_name="r", resume=None)
    assert "--resume auto" in info.value.hint


def test_resume_auto_needs_the_runs_name(data_root: Path):
    """Without --run a new run is named from the clock: nothing to resume, refused."""
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="r1", resume=None) == 0
    with pytest.raises(ConfigError, match="--resume auto needs the run's name") as info:
        run_train(cfg, run_name=None, resume="auto")
    assert info.value.hint == "--run NAME --resume auto (runs with a last.pt: r1)"
    assert [p.name for p in (data_root / "checkpoints").iterdir()] == ["r1"]


def test_resume_auto_of_a_run_not_started_says_it_starts_at_step_0(
    data_root: Path, capsys
):
    """--resume auto starts a run it cannot find (a job script's first launch), and
    says so, naming the runs it could have meant (a misspelt --run)."""
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="r1", resume=None) == 0
    capsys.readouterr()
    assert run_train(cfg, run_name="r2", resume="auto") == 0
    out = capsys.readouterr().out
    assert "--resume auto: run r2 has no last.pt yet, so it starts at step 0 " in out
    assert "(runs with a last.pt: r1)" in out


def test_a_resume_keeps_the_network_and_says_what_it_did_not_apply(
    data_root: Path, capsys
):
    cfg = tiny_config(data_root, "train.max_steps=1", "train.eval_every=1")
    assert run_train(cfg, run_name="n", resume=None) == 0
    capsys.readouterr()
    other = tiny_config(
        data_root, "train.max_steps=2", "model.preset='small'", "data.vocab='basic3'",
        "data.target_widen_frames=3",
    )  # fmt: skip
    assert run_train(other, run_name="n", resume="auto") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "resume: model.preset = 'small' is not applied: a run keeps its network " \
        "(model.preset = 'tiny')" in out
    assert "resume: data.vocab = 'basic3' is not applied" in out
    # what a resume does apply is said too, and the settings step 1 was trained
    # with stay beside the new config.json
    before = cfg.to_dict()["data"]["target_widen_frames"]
    assert f"resume: data.target_widen_frames {before!r} -> 3 (applied)" in out
    logs = data_root / "logs" / "n"
    earlier = json.loads((logs / "config.before-step-000001.json").read_text())
    assert earlier["data"]["target_widen_frames"] == before
    assert json.loads((logs / "config.json").read_text())["data"][
        "target_widen_frames"
    ] == 3
    last = load_checkpoint(data_root / "checkpoints" / "n" / "last.pt")
    assert last["step"] == 2 and last["config"]["model"]["preset"] == "tiny"
    assert last["vocab"] == "roland9"
    capsys.readouterr()
    same = tiny_config(data_root, "train.max_steps=3")
    assert run_train(same, run_name="n", resume="auto") == 0
    assert "is not applied" not in capsys.readouterr().out


def test_a_resume_from_an_older_step_replaces_the_curves_after_it(data_root: Path):
    """TensorBoard's curves go on from the step resumed, not doubling back over the
    steps the abandoned attempt logged after it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(data_root, "train.max_steps=6", "train.eval_every=3")
    assert run_train(cfg, run_name="p", resume=None) == 0
    older = data_root / "checkpoints" / "p" / "step-000003.pt"
    # a shorter attempt from step 3 keeping one step checkpoint: its own save at
    # step 5 stays (the abandoned step 6 outranked and deleted it), step 6 too
    short = tiny_config(
        data_root, "train.max_steps=5", "train.eval_every=3", "train.keep_checkpoints=1"
    )
    assert run_train(short, run_name="p", resume=str(older)) == 0
    steps = sorted(p.name for p in older.parent.glob("step-*.pt"))
    assert steps == ["step-000005.pt", "step-000006.pt"]
    assert run_train(cfg, run_name="p", resume="auto") == 0
    acc = EventAccumulator(str(data_root / "logs" / "p"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in acc.Scalars("val/f1")] == [3, 5, 6]
    # An attempt that logged but never saved (as a crash before the first save
    # leaves it): the run starts again at step 0 over its curves, not beside them.
    shutil.rmtree(data_root / "checkpoints" / "p")
    assert run_train(cfg, run_name="p", resume="auto") == 0
    acc = EventAccumulator(str(data_root / "logs" / "p"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]


def test_non_finite_loss_stops_with_the_step(data_root: Path, monkeypatch):
    import drumtx.train_step as train_step

    monkeypatch.setattr(
        train_step,
        "compute_loss",
        lambda *a, **k: torch.tensor(float("nan"), requires_grad=True),
    )
    cfg = tiny_config(data_root, "train.max_bad_steps=3", "train.max_steps=10")
    with pytest.raises(DrumtxError, match=r"not finite for 3 steps.*step 2"):
        run_train(cfg, run_name="nan", resume=None)


def test_a_resume_from_an_older_step_keeps_a_better_best_pt(data_root: Path, capsys):
    """best.pt from a later step of the abandoned attempt, scored higher than anything
    up to the resumed step, is replaced only by a higher score, not by whatever first
    beats the resumed step's best."""
    from drumtx.checkpoint import save_checkpoint

    cfg = tiny_config(data_root, "train.max_steps=6", "train.eval_every=3")
    assert run_train(cfg, run_name="b", resume=None) == 0
    run_dir = data_root / "checkpoints" / "b"
    best = load_checkpoint(run_dir / "best.pt")
    best.update(step=6, best_score=0.999)  # as if step 6 had scored (nearly) perfectly
    save_checkpoint(run_dir / "best.pt", best)
    before = (run_dir / "best.pt").read_bytes()
    capsys.readouterr()
    assert run_train(cfg, run_name="b", resume=str(run_dir / "step-000003.pt")) == 0
    out = capsys.readouterr().out
    assert "resume: best.pt is step 6's of an earlier attempt (validation score " \
        "0.999); it stays best.pt until this run scores higher" in out  # fmt: skip
    assert (run_dir / "best.pt").read_bytes() == before
    assert load_checkpoint(run_dir / "last.pt")["best_score"] == pytest.approx(0.999)


def test_resume_from_an_eval_step_does_not_validate_it_again(data_root: Path, capsys):
    cfg = tiny_config(data_root, "train.max_steps=3", "train.eval_every=3")
    assert run_train(cfg, run_name="e", resume=None) == 0
    out = capsys.readouterr().out
    assert "step 3: val micro-F1" in out
    assert re.search(r"best \d\.\d{3}\), val loss \d+\.\d{4}\n", out), out
    longer = tiny_config(data_root, "train.max_steps=6", "train.eval_every=3")
    assert run_train(longer, run_name="e", resume="auto") == 0
    out = capsys.readouterr().out
    assert "at step 3" in out and "step 3: val micro-F1" not in out
    assert "step 6: val micro-F1" in out
    history = load_checkpoint(data_root / "checkpoints" / "e" / "last.pt")["history"]
    assert [h["step"] for h in history] == [3, 6]


def test_a_time_limited_run_shows_its_time_budget(data_root: Path, capsys):
    cfg = tiny_config(data_root, "train.max_steps=2", "train.time_limit_min=90")
    assert run_train(cfg, run_name="tl", resume=None) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if line.startswith("step 1 ")]
    assert steps and "/1:30:00" in steps[0], lines
    assert not any(line.startswith("step 1/2") for line in lines)


# --- interruptions --------------------------------------------------------------------

SIGNAL_AT_STEP = 1  # the optimizer step (0-based) a signal arrives in


def _interrupt_config(data_root: Path, *extra: str):
    return tiny_config(
        data_root,
        "train.max_steps=6",
        "train.accum_steps=2",
        "train.batch_size=4",
        "train.lr=3e-3",
        *extra,
    )


@pytest.fixture(scope="module")
def uninterrupted(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The state an uninterrupted run reaches after SIGNAL_AT_STEP + 1 steps."""
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "processed_data").symlink_to(made_store / "processed_data")
    n = SIGNAL_AT_STEP + 1
    cfg = _interrupt_config(root, f"train.eval_every={n}", "train.keep_checkpoints=9")
    assert run_train(cfg, run_name="ref", resume=None) == 0
    return load_checkpoint(root / "checkpoints" / "ref" / f"step-{n:06d}.pt")


def _signal_in_optimizer_step(monkeypatch, request) -> None:
    """SIGTERM from inside AdamW's step: the weights have moved, the step count not."""
    calls = []

    def hook(optimizer, args, kwargs):
        calls.append(1)
        if len(calls) == SIGNAL_AT_STEP + 1:
            signal.raise_signal(signal.SIGTERM)

    handle = register_optimizer_step_post_hook(hook)
    request.addfinalizer(handle.remove)


def _signal_in_micro_step(monkeypatch, request) -> None:
    """SIGINT from inside the loss of a micro-step, before its backward."""
    import drumtx.train_step as train_step

    real, calls = train_step.compute_loss, []

    def loss_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 * SIGNAL_AT_STEP + 1:  # accum_steps=2: first micro-step
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_step, "compute_loss", loss_then_signal)


@pytest.mark.parametrize("where", [_signal_in_optimizer_step, _signal_in_micro_step])
def test_a_signal_mid_step_saves_whole_steps(
    data_root: Path, uninterrupted: dict, monkeypatch, request, capsys, where
):
    where(monkeypatch, request)
    status = run_train(_interrupt_config(data_root), run_name="i", resume=None)
    assert status == 130
    saved = load_checkpoint(data_root / "checkpoints" / "i" / "last.pt")
    # The step in flight finished: the step number counts exactly the updates applied,
    # and the weights are those of an uninterrupted run after as many steps.
    assert saved["step"] == SIGNAL_AT_STEP + 1
    assert _adam_steps(saved) == {float(SIGNAL_AT_STEP + 1)}
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(saved["model"][name], tensor), name
    assert f"interrupted at step {SIGNAL_AT_STEP + 1}" in capsys.readouterr().out


def _train_cmd(data_root: Path, *extra: str) -> list[str]:
    sets = []
    for item in [
        "model.preset='tiny'",
        "data.crop_sec=3.0",
        "data.num_workers=0",
        "data.block_mb=1.0",
        "data.shuffle_blocks=2",
        "train.device='cpu'",
        "train.batch_size=4",
        "train.warmup_steps=2",
        "train.log_every=1",
        "train.val_max_recordings=1",
        *extra,
    ]:
        sets += ["--set", item]
    return ["-m", "drumtx", "train", "--data-root", str(data_root), *sets]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_after_checkpoint_then_resume_continues(data_root: Path):
    cmd = [
        sys.executable,
        *_train_cmd(data_root, "train.max_steps=1000", "train.eval_every=3"),
    ]
    proc = subprocess.Popen(
        cmd + ["--run", "k"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_dir = data_root / "checkpoints" / "k"
    _wait_for(run_dir / "step-000003.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Whatever the moment of the kill, every checkpoint on disk loads.
    saved = {p.name: load_checkpoint(p) for p in run_dir.glob("*.pt")}
    assert "last.pt" in saved
    killed_step = saved["last.pt"]["step"]
    assert killed_step >= 3 and killed_step % 3 == 0
    resumed = subprocess.run(
        [
            sys.executable,
            *_train_cmd(
                data_root, f"train.max_steps={killed_step + 3}", "train.eval_every=3"
            ),
            "--run",
            "k",
            "--resume",
            "auto",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {run_dir / 'last.pt'} at step {killed_step}" in resumed.stdout
    final = load_checkpoint(run_dir / "last.pt")
    assert final["step"] == killed_step + 3
    # AdamW counts its own steps: continuity proves the optimizer state was restored.
    assert _adam_steps(final) == {float(killed_step + 3)}
    # Each step is validated once, across the kill and the resume.
    steps = [h["step"] for h in final["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == killed_step + 3


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_to_the_process_group_saves_and_exits_130(data_root: Path, signum):
    """Ctrl-C (SIGINT) and torchrun's stop (SIGTERM) reach the loader's workers too."""
    cmd = [
        sys.executable,
        *_train_cmd(
            data_root,
            "train.max_steps=100000",
            "train.eval_every=100000",
            "data.num_workers=1",
        ),
        "--run",
        "c",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _wait_for(data_root / "logs" / "c" / "config.json", proc)
    time.sleep(2.0)
    os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    state = load_checkpoint(data_root / "checkpoints" / "c" / "last.pt")
    assert f"interrupted at step {state['step']}; saved " in out
    assert "continue with: python -m drumtx train --run c --resume auto" in out
    if state["step"] > 0:
        assert _adam_steps(state) == {float(state["step"])}
    # Piped output is plain whole lines: the long path is not broken in two.
    assert f"saved {data_root / 'checkpoints' / 'c' / 'last.pt'}" in out


# --- torchrun -------------------------------------------------------------------------

# Run by torchrun in each rank: drumtx's CLI, with make_loader wrapped so that each
# rank writes down which rank asked for crops and what its first batch holds, and
# its exit code. The first batch is drawn from a fresh iterator: the same crops the
# loop's own iterator yields first (num_workers=0, seeded).
PROBE = """
import os, sys
from pathlib import Path
import drumtx.train as train
out, rank, real = Path(sys.argv[1]), os.environ["RANK"], train.make_loader
def make_loader(*args, **kwargs):
    loader = real(*args, **kwargs)
    audio = next(iter(loader))[0]
    crops = f"{kwargs['rank']} {kwargs['world_size']} {float(audio.double().sum())!r}"
    (out / f"crops{rank}").write_text(crops)
    (out / f"pid{rank}").write_text(str(os.getpid()))
    return loader
train.make_loader = make_loader
from drumtx.cli import main
code = main(sys.argv[2:])
(out / f"exit{rank}").write_text(str(code))
raise SystemExit(code)
"""


def _torchrun(data_root: Path, probe_dir: Path, *extra: str) -> list[str]:
    probe = probe_dir / "probe.py"
    probe.write_text(PROBE)
    train_args = _train_cmd(data_root, *extra)[2:]  # without "-m drumtx"
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(probe),
        str(probe_dir),
        *train_args,
    ]


needs_dist = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="no torch.distributed"
)
TORCHRUN_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@needs_dist
def test_torchrun_two_cpu_ranks(data_root: Path, tmp_path: Path):
    cmd = _torchrun(data_root, tmp_path, "train.max_steps=4", "train.eval_every=2")
    result = subprocess.run(
        [*cmd, "--run-name", "ddp"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=TORCHRUN_ENV,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    crops = {r: (tmp_path / f"crops{r}").read_text().split() for r in "01"}
    assert [crops[r][:2] for r in "01"] == [["0", "2"], ["1", "2"]]
    assert crops["0"][2] != crops["1"][2]  # rank-seeded crops
    events = list((data_root / "logs" / "ddp").glob("events.out.tfevents.*"))
    assert len(events) == 1  # rank 0 alone logs
    assert load_checkpoint(data_root / "checkpoints" / "ddp" / "last.pt")["step"] == 4
    assert out.count("checkpoints: ") == 1  # rank 0 alone reports
    shutil.rmtree(data_root / "checkpoints" / "ddp")


@needs_dist
def test_torchrun_a_signal_to_one_rank_stops_both_at_one_step(
    data_root: Path, tmp_path: Path
):
    cmd = _torchrun(data_root, tmp_path, "train.max_steps=1000", "train.eval_every=2")
    proc = subprocess.Popen(
        [*cmd, "--run-name", "sig"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=TORCHRUN_ENV,
    )
    run_dir = data_root / "checkpoints" / "sig"
    _wait_for(run_dir / "step-000002.pt", proc)
    os.kill(int((tmp_path / "pid1").read_text()), signal.SIGTERM)  # rank 1 alone
    out, _ = proc.communicate(timeout=120)
    # Both ranks left the loop at the same step boundary, none hung in an all-reduce.
    assert [(tmp_path / f"exit{r}").read_text() for r in "01"] == ["130", "130"], out
    saved = load_checkpoint(run_dir / "last.pt")
    assert saved["step"] >= 2
    assert _adam_steps(saved) == {float(saved["step"])}
    assert f"interrupted at step {saved['step']}; saved" in out


def test_a_train_store_in_csv_order_is_noted(tmp_path: Path, capsys):
    from drumtx.distributed import Dist
    from drumtx.train import note_store_order

    (tmp_path / "manifest.json").write_text('{"order": "shuffled"}')
    note_store_order(tmp_path, Dist())
    assert capsys.readouterr().out == ""
    (tmp_path / "manifest.json").write_text("{}")  # made before the key: CSV order
    note_store_order(tmp_path, Dist())
    assert "keeps the E-GMD CSV order" in capsys.readouterr().out


# --- resume: the schedule, changed settings, each rank's RNG, older checkpoints -------


def _lrs_of(monkeypatch) -> list[float]:
    """The learning rate of every optimizer step run_train takes from now on."""
    import drumtx.train as train

    lrs, real = [], train.optimizer_step

    def recording(parts, next_batch, lr):
        lrs.append(lr)
        return real(parts, next_batch, lr)

    monkeypatch.setattr(train, "optimizer_step", recording)
    return lrs


def test_a_longer_resume_keeps_the_cosine_horizon(data_root: Path, monkeypatch, capsys):
    base = ("train.warmup_steps=1", "train.eval_every=3", "train.min_lr=1e-5")
    cfg = tiny_config(data_root, "train.max_steps=3", *base)
    assert run_train(cfg, run_name="h", resume=None) == 0
    lrs = _lrs_of(monkeypatch)
    longer = tiny_config(data_root, "train.max_steps=5", *base)
    assert run_train(longer, run_name="h", resume="auto") == 0
    assert lrs == pytest.approx([1e-5, 1e-5])  # at the floor, not back up the cosine
    assert "keeps its horizon at step 3" in capsys.readouterr().out
    saved = load_checkpoint(data_root / "checkpoints" / "h" / "last.pt")
    assert saved["schedule"]["horizon_steps"] == 3


def test_a_changed_weight_decay_is_refused_then_applied(data_root: Path, capsys):
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="wd", resume=None) == 0
    changed = ("train.max_steps=2", "train.weight_decay=0.05")
    with pytest.raises(ConfigError, match="train.weight_decay 0.01 -> 0.05") as info:
        run_train(tiny_config(data_root, *changed), run_name="wd", resume="auto")
    assert "train.resume_schedule='new'" in (info.value.hint or "")
    new = tiny_config(data_root, *changed, "train.resume_schedule='new'")
    assert run_train(new, run_name="wd", resume="auto") == 0
    assert "train.weight_decay 0.01 -> 0.05" in capsys.readouterr().out
    saved = load_checkpoint(data_root / "checkpoints" / "wd" / "last.pt")
    groups = saved["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert saved["schedule"]["weight_decay"] == 0.05


def test_a_checkpoint_with_the_old_score_names_resumes(data_root: Path):
    """best_score and history "score" hold the validation score (not a micro-F1);
    checkpoints from before call them best_f1 and micro_f1."""
    from drumtx.checkpoint import save_checkpoint

    cfg = tiny_config(data_root, "train.max_steps=3", "train.eval_every=3")
    assert run_train(cfg, run_name="old", resume=None) == 0
    last = data_root / "checkpoints" / "old" / "last.pt"
    saved = load_checkpoint(last)
    assert set(saved["history"][0]) == {"step", "score"} and "best_f1" not in saved
    score = saved["best_score"]
    old = {k: v for k, v in saved.items() if k not in ("schedule", "rng_by_rank")}
    old["best_f1"] = old.pop("best_score")
    old["history"] = [{"step": 3, "micro_f1": score}]
    save_checkpoint(last, old)
    longer = tiny_config(data_root, "train.max_steps=6", "train.eval_every=3")
    assert run_train(longer, run_name="old", resume="auto") == 0
    final = load_checkpoint(last)
    assert [h["step"] for h in final["history"]] == [3, 6]
    assert final["history"][0]["score"] == score
    assert final["best_score"] >= score


def test_each_rank_seeds_and_restores_its_own_rng():
    from drumtx.config import load_config
    from drumtx.train_state import TrainState, restore, seed_rank, training_payload
    from drumtx.train_step import build_parts

    draws = []
    for rank in (0, 1):
        seed_rank(1234, rank)
        draws.append(torch.rand(4))
    assert not torch.equal(draws[0], draws[1])  # dropout masks differ across ranks
    cfg = load_config(None, ["model.preset='tiny'", "train.device='cpu'"])
    parts = build_parts(cfg, torch.device("cpu"), 9)
    rngs = []
    for rank in (0, 1):
        seed_rank(7, rank)
        rngs.append({"torch": torch.get_rng_state()})
    saved = training_payload(cfg, parts, TrainState(step=5), rngs)
    for rank in (0, 1):
        torch.manual_seed(0)
        restore(saved, build_parts(cfg, torch.device("cpu"), 9), TrainState(), rank)
        assert torch.equal(torch.get_rng_state(), rngs[rank]["torch"]), rank
    restore(saved, parts, TrainState(), 2)  # a rank the saved run did not have
    assert not any(torch.equal(torch.get_rng_state(), r["torch"]) for r in rngs)


def test_init_from_starts_a_new_run_from_a_checkpoints_weights(data_root: Path, capsys):
    """train.init_from fine-tunes: step 0 of the new run holds the given weights (its
    network shape too, whatever the TOML says), with a fresh optimizer and schedule."""
    cfg = tiny_config(data_root, "train.max_steps=2", "train.eval_every=2")
    assert run_train(cfg, run_name="base", resume=None) == 0
    base = data_root / "checkpoints" / "base" / "best.pt"
    fine = tiny_config(
        data_root,
        "train.max_steps=1",
        "train.eval_every=1",
        "train.lr=0.0",  # no update: the saved weights must be the initial ones
        "train.min_lr=0.0",
        "frontend.n_mels=40",  # model-shaping: taken from the checkpoint instead
        f"train.init_from='{base}'",
    )
    assert run_train(fine, run_name="fine", resume=None) == 0
    assert f"initial weights from {base}" in capsys.readouterr().out
    want, got = load_checkpoint(base), load_checkpoint(
        data_root / "checkpoints" / "fine" / "last.pt"
    )
    assert got["config"]["frontend"] == want["config"]["frontend"]
    assert _adam_steps(got) == {1.0}
    # Parameters unchanged at lr 0 (BatchNorm's running statistics do move: training
    # mode updates them on every batch).
    params = [k for k in want["model"] if "running_" not in k and "batches" not in k]
    assert len(params) > 10
    for name in params:
        assert torch.equal(got["model"][name], want["model"][name]), name


@pytest.mark.parametrize("signalled", [True, False], ids=["stopped", "crashed"])
def test_a_worker_ended_mid_step_after_a_stop_still_saves(
    data_root: Path, monkeypatch, signalled: bool
):
    """A step slower than the loader workers' stop grace (a busy CPU): Ctrl-C, the
    workers end, the step fails on the lost worker. The run saves the last whole step
    and exits 130; the same failure without a stop signal is a crash, raised."""
    import drumtx.train as train_module

    real, calls = train_module.optimizer_step, []

    def slow_step(parts, next_batch, lr):
        calls.append(1)
        if len(calls) == 3:
            if signalled:
                os.kill(os.getpid(), signal.SIGINT)  # the flag only: StopSignals
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Alarm")
        return real(parts, next_batch, lr)

    monkeypatch.setattr(train_module, "optimizer_step", slow_step)
    cfg = tiny_config(data_root, "train.max_steps=50", "train.eval_every=1000")
    if not signalled:
        with pytest.raises(RuntimeError, match="DataLoader worker"):
            run_train(cfg, run_name="w", resume=None)
        return
    assert run_train(cfg, run_name="w", resume=None) == 130
    state = load_checkpoint(data_root / "checkpoints" / "w" / "last.pt")
    assert state["step"] == 2 and _adam_steps(state) == {2.0}


def test_soft_onset_weight_makes_a_missed_soft_hit_cost_more() -> None:
    import torch
    import torch.nn.functional as F

    from drumtx.config import load_config
    from drumtx.train_step import compute_loss

    onset = torch.zeros(1, 4, 2)
    onset[0, 1, 0] = onset[0, 2, 1] = 1.0
    mask = onset.clone()
    velocity = torch.zeros_like(onset)
    velocity[0, 1, 0], velocity[0, 2, 1] = 0.1, 0.9  # a ghost note, an accent
    logits = torch.full_like(onset, -3.0)  # both hits missed alike
    pos_weight = torch.ones(2)

    def loss(weight: float, logits: torch.Tensor) -> float:
        cfg = load_config(None, ["train.velocity_weight=0.0",
                                 f"train.soft_onset_weight={weight}"])  # fmt: skip
        out = compute_loss(logits, logits, onset, velocity, mask, pos_weight, cfg)
        return out.item()

    # off: the plain mean BCE, as before the option
    plain = F.binary_cross_entropy_with_logits(logits, onset).item()
    assert loss(0.0, logits) == pytest.approx(plain, rel=1e-6)
    # on: each onset frame's term grows by 1 + w (1 - velocity), silence untouched
    bce = F.binary_cross_entropy_with_logits(logits, onset, reduction="none")
    weights = torch.ones_like(onset)
    weights[0, 1, 0], weights[0, 2, 1] = 1 + 2.0 * 0.9, 1 + 2.0 * 0.1
    weighted = (bce * weights).sum().item() / onset.numel()
    assert loss(2.0, logits) == pytest.approx(weighted, rel=1e-6)
    # finding the ghost note now lowers the loss more than finding the accent
    ghost_found, accent_found = logits.clone(), logits.clone()
    ghost_found[0, 1, 0] = accent_found[0, 2, 1] = 3.0
    assert loss(2.0, ghost_found) < loss(2.0, accent_found)
    assert loss(0.0, ghost_found) == pytest.approx(loss(0.0, accent_found), rel=1e-6)


def test_validation_loss_is_the_training_loss_of_whole_recordings() -> None:
    """recording_loss, from inference's probabilities and a recording's hits, is
    compute_loss of the logits against the targets a crop of it makes."""
    from drumtx.data import make_targets
    from drumtx.processed import HITS_DTYPE
    from drumtx.train_step import build_parts, compute_loss, recording_loss

    cfg = tiny_config(Path("/nonexistent"), "data.target_widen_frames=1",
                      "train.soft_onset_weight=1.0")  # fmt: skip
    n_t, n_classes, hop = 50, 3, cfg.hop_length
    parts = build_parts(cfg, torch.device("cpu"), n_classes)
    hits = np.zeros(4, dtype=HITS_DTYPE)
    hits["sample"] = [5 * hop, 5 * hop + 3, 20 * hop - 2, 49 * hop + 1]
    hits["class"], hits["velocity"] = [0, 2, 1, 0], [100, 30, 64, 127]
    onset, velocity, mask = make_targets(
        np.array([5, 5, 20, 49]), hits["class"].astype(np.int64),
        hits["velocity"] / 127.0, n_t, n_classes, widen=1,
    )  # fmt: skip
    logits = torch.randn(1, n_t, n_classes, generator=torch.Generator().manual_seed(0))
    vel = torch.rand(1, n_t, n_classes, generator=torch.Generator().manual_seed(1))
    expected = compute_loss(logits, vel, *(torch.from_numpy(t)[None]
                            for t in (onset, velocity, mask)), parts.pos_weight, cfg)
    got, frames = recording_loss(parts, hits, torch.sigmoid(logits)[0].numpy(),
                                 vel[0].numpy())  # fmt: skip
    assert frames == n_t
    assert got == pytest.approx(expected.item(), rel=1e-5)
    # hearing the hits lowers it; hearing them a few frames late does not
    heard = np.clip(onset, 0.02, 0.95)  # widened frames as targeted
    late = np.roll(heard, 3, axis=0)
    assert recording_loss(parts, hits, heard, velocity)[0] < 0.2 * got
    assert recording_loss(parts, hits, late, velocity)[0] > 5 * recording_loss(
        parts, hits, heard, velocity)[0]  # fmt: skip


def test_a_run_with_more_workers_than_cpus_says_how_many_it_uses(
    data_root: Path, capsys, monkeypatch
):
    import drumtx.data

    monkeypatch.setattr(drumtx.data, "usable_cpus", lambda: 1)
    made = []
    real_loader = torch.utils.data.DataLoader

    def loader(*args, **kwargs):
        made.append(kwargs["num_workers"])
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", loader)
    cfg = tiny_config(data_root, "train.max_steps=1", "data.num_workers=3")
    assert run_train(cfg, run_name="w", resume=None) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: data.num_workers = 3 is more than this process's share of the " \
        "CPUs (1), so each process's batches come from 1" in out
    assert made == [1]


def test_a_run_says_what_it_trains_and_where_before_its_first_step(
    data_root: Path, capsys
):
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="s", resume=None) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "run s: the tiny model (0.07 M parameters, data.vocab roland9) on cpu, " \
        "steps 0 -> 1" in out
    assert f"checkpoints {data_root / 'checkpoints' / 's'}, TensorBoard logs " \
        f"{data_root / 'logs' / 's'}" in out
    assert "meant for a GPU" not in out
    from drumtx.train import start_lines

    class Parts:  # start_lines reads the model and the device alone
        model = torch.nn.Linear(1, 1)
        device = torch.device("cpu")

    base = tiny_config(data_root, "model.preset='base'")
    lines = start_lines(base, Parts(), 0, data_root, data_root, _one_rank())
    assert any("the base model is meant for a GPU" in line for line in lines)


def _one_rank():
    from drumtx.distributed import Dist

    return Dist()


def test_the_command_to_continue_a_run_is_torchruns_for_several_ranks():
    from drumtx.distributed import Dist
    from drumtx.train import continue_command

    one = continue_command("r", Dist())
    assert one == "python -m drumtx train --run r --resume auto"
    assert continue_command("r", Dist(world_size=4)) == (
        "torchrun --nproc-per-node N -m drumtx train --run-name r --resume auto"
    )


def test_a_class_never_heard_in_validation_logs_no_f1():
    """A 0 there would be no measurement: the class had no hit either side."""
    from drumtx.train_log import heard

    rows = {"KD": {"n_ref": 3, "n_est": 0}, "RD": {"n_ref": 0, "n_est": 0},
            "CR": {"n_ref": 0, "n_est": 2}}  # fmt: skip
    assert heard({"classes": rows}, ["KD", "RD", "CR"]) == ["KD", "CR"]
