"""tools/average_models.py: the weighted mean of models of one network, and refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import save_random_model

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import average_models  # noqa: E402

from drumtx.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from drumtx.model import build_model  # noqa: E402


def _two_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two tiny models of one network with different weights and thresholds."""
    a = save_random_model(tmp_path / "a.pt")
    state = load_checkpoint(a)
    _save(a, {**state, "thresholds": {"KD": 0.4}})
    torch.manual_seed(1)
    state["model"] = {
        k: t + torch.randn_like(t) if t.is_floating_point() else t + 7
        for k, t in state["model"].items()
    }
    state["thresholds"] = {"KD": 0.9}
    b = tmp_path / "b.pt"
    _save(b, state)
    return a, b


def _save(path: Path, state: dict) -> None:
    """save_checkpoint adds the format and version itself."""
    save_checkpoint(
        path, {k: v for k, v in state.items() if k not in ("format", "version")}
    )


def test_average_is_the_weighted_mean_of_the_weights(tmp_path: Path, capsys) -> None:
    a, b = _two_models(tmp_path)
    out = tmp_path / "soup" / "wise.pt"
    argv = [str(a), str(b), "--weights", "3,1", "--out", str(out)]
    assert average_models.main(argv) == 0
    wa, wb = load_checkpoint(a), load_checkpoint(b)
    soup = load_checkpoint(out)
    n_float = 0
    for key, tensor in soup["model"].items():
        if tensor.is_floating_point():
            mean = 0.75 * wa["model"][key] + 0.25 * wb["model"][key]
            torch.testing.assert_close(tensor, mean)
            n_float += not torch.equal(wa["model"][key], wb["model"][key])
        else:  # integer buffers (batch-norm counts) from the first model
            assert torch.equal(tensor, wa["model"][key])
            assert not torch.equal(tensor, wb["model"][key])
    assert n_float > 10
    assert soup["thresholds"] == {"KD": 0.4} == wa["thresholds"]
    assert soup["averaged_weights"] == [0.75, 0.25]
    # It is a model drumtx loads and runs.
    from drumtx.checkpoint import model_config
    from drumtx.config import load_config

    model = build_model(model_config(load_config(None, []), soup), 9)
    model.load_state_dict(soup["model"])
    report = capsys.readouterr().out
    assert "0.750 x" in report and "0.250 x" in report and f"wrote {out}" in report


def test_equal_shares_by_default(tmp_path: Path) -> None:
    a, b = _two_models(tmp_path)
    out = tmp_path / "soup.pt"
    assert average_models.main([str(a), str(b), "--out", str(out)]) == 0
    key = "input_norm.weight"
    expected = (load_checkpoint(a)["model"][key] + load_checkpoint(b)["model"][key]) / 2
    torch.testing.assert_close(load_checkpoint(out)["model"][key], expected)


@pytest.mark.parametrize(
    "case, message",
    [
        ("another preset", "differs from"),
        ("another vocabulary", "vocabulary"),
        ("one model", "two or more models"),
        ("three shares", "3 shares for 2 models"),
        ("a negative share", "shares must be >= 0"),
        ("out exists", "exists"),
    ],
)
def test_refusals_write_nothing(
    tmp_path: Path, capsys, case: str, message: str
) -> None:
    a, b = _two_models(tmp_path)
    out = tmp_path / "out.pt"
    argv = [str(a), str(b), "--out", str(out)]
    if case == "another preset":
        save_random_model(b, ["model.preset='small'"])
    elif case == "another vocabulary":
        state = load_checkpoint(b)
        state["vocab"] = "adtof5"
        _save(b, state)
    elif case == "one model":
        argv = [str(a), "--out", str(out)]
    elif case == "three shares":
        argv += ["--weights", "1,1,1"]
    elif case == "a negative share":
        argv += ["--weights", "1,-1"]
    elif case == "out exists":
        out.write_bytes(b"mine")
    assert average_models.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "\nhint: " in err
    assert (out.read_bytes() == b"mine") if case == "out exists" else not out.exists()
