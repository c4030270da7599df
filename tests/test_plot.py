"""plot: the drum roll picture and the validation image share one renderer."""

from __future__ import annotations

import importlib.util
import io
import sys

import numpy as np
import pytest

from drumtx import plot, scoring
from drumtx.drums import ROLAND9, Hit
from drumtx.errors import ConfigError

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed"
)


def hits() -> list[Hit]:
    return [Hit(0.5 * k, k % 3, 40 + 8 * k) for k in range(10)]


def test_validation_picture_without_matplotlib_is_the_plain_image(monkeypatch) -> None:
    """Training must not need the plot extra: the old 72-row image instead."""
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    onset = np.zeros((1000, 9), dtype=np.float32)
    image = scoring.validation_picture(onset, hits(), hits(), ROLAND9.codes, 100)
    assert image.shape == (72, 1000, 3)


@needs_matplotlib
def test_validation_picture_is_the_drum_roll_renderers() -> None:
    onset = np.zeros((1000, 9), dtype=np.float32)
    picture = scoring.validation_picture(onset, hits(), hits()[:5], ROLAND9.codes, 100)
    direct = plot.validation_image(onset, hits(), hits()[:5], ROLAND9.codes, 100)
    assert np.array_equal(picture, direct)


@needs_matplotlib
def test_drum_roll_png_is_a_picture_with_a_row_per_class() -> None:
    data = plot.drum_roll_png(
        hits(), ROLAND9.codes, np.arange(0, 40, 0.5), np.arange(0, 40, 2.0), 40.0, "t"
    )
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    picture = imread(io.BytesIO(data))
    height, width = picture.shape[:2]
    assert width > 1000 and height > 2 * 0.28 * 9 * 100  # two 30 s panels


@needs_matplotlib
def test_validation_image_shows_reference_beside_prediction() -> None:
    onset = np.zeros((1000, 9), dtype=np.float32)
    onset[50, 0] = 0.9
    image = plot.validation_image(onset, hits(), hits()[:5], ROLAND9.codes, 100)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 300 and image.shape[1] > 1000  # labelled, not 72 x 1000
    red = (image[:, :, 0] > 200) & (image[:, :, 1] < 80) & (image[:, :, 2] < 80)
    assert red.any()  # the reference dots


def test_missing_matplotlib_fails_before_any_work(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(ConfigError) as info:
        plot.require_matplotlib()
    assert "pip install" in info.value.hint
