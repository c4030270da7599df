"""The GRU's two directions on threads of their own in CPU inference (threads.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import drumtx.model
import drumtx.threads
from drumtx.config import load_config
from drumtx.model import build_model
from drumtx.threads import (
    bidirectional_gru,
    one_torch_thread,
    splits_directions,
    torch_threads,
)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """torch on two intra-op threads, whatever this machine's default."""
    with torch_threads(2):
        yield


def make_gru(layers: int = 1, bidirectional: bool = True) -> nn.GRU:
    torch.manual_seed(0)
    return nn.GRU(24, 16, num_layers=layers, batch_first=True,
                  bidirectional=bidirectional).eval()  # fmt: skip


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
def test_split_directions_give_what_the_module_gives(two_threads, layers, mode):
    gru, x = make_gru(layers), torch.randn(3, 50, 24)
    with mode():
        assert splits_directions(gru, x)
        torch.testing.assert_close(
            bidirectional_gru(gru, x), gru(x)[0], atol=1e-6, rtol=0
        )
    assert torch.get_num_threads() == 2  # the process's count is back


def test_each_direction_runs_on_its_own_thread_on_one_torch_thread(
    two_threads, monkeypatch
):
    seen = {}
    direction = drumtx.threads._direction

    def spy(gru, layer, x, suffix):
        seen[suffix] = (threading.get_ident(), torch.get_num_threads(),
                        torch.is_inference_mode_enabled())  # fmt: skip
        return direction(gru, layer, x, suffix)

    monkeypatch.setattr(drumtx.threads, "_direction", spy)
    with torch.inference_mode():
        bidirectional_gru(make_gru(), torch.randn(2, 20, 24))
    forward, backward = seen[""], seen["_reverse"]
    assert forward[0] == threading.get_ident() != backward[0]
    assert forward[1:] == backward[1:] == (1, True)


def test_an_error_in_the_backward_direction_reaches_the_caller(
    two_threads, monkeypatch
):
    direction = drumtx.threads._direction

    def failing(gru, layer, x, suffix):
        if suffix == "_reverse":
            raise MemoryError("no room for the backward direction")
        return direction(gru, layer, x, suffix)

    monkeypatch.setattr(drumtx.threads, "_direction", failing)
    with torch.inference_mode(), pytest.raises(MemoryError, match="no room"):
        bidirectional_gru(make_gru(), torch.randn(2, 20, 24))
    assert torch.get_num_threads() == 2


def test_training_gradients_one_thread_and_other_grus_keep_the_module(two_threads):
    gru, x = make_gru(), torch.randn(2, 20, 24)
    assert not splits_directions(gru, x)  # gradients on: training or tuning
    with torch.no_grad():
        assert not splits_directions(make_gru(bidirectional=False), x)
        assert not splits_directions(gru.train(), x)  # dropout between layers
        gru.eval()
        with one_torch_thread():  # nothing to split a single thread between
            assert torch.get_num_threads() == 1
            assert not splits_directions(gru, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not splits_directions(gru, x)  # autocast is per thread too
        assert splits_directions(gru, x)


def test_the_model_transcribes_alike_with_the_split_and_the_pool(
    two_threads, monkeypatch
):
    model = build_model(load_config(None, ["model.preset='tiny'"]), 9).eval()
    feats = torch.randn(2, 120, 128)
    with torch.inference_mode():
        split = model(feats)
        monkeypatch.setattr(drumtx.model, "splits_directions", lambda gru, x: False)
        pool = model(feats)
    for a, b in zip(split, pool):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
