"""Pictures of hits: a drum roll with one labelled row per class, bars and beats as grid
lines, velocity as marker size. ``transcribe --plot`` writes one per file; validation
during training draws the reference beside the prediction with the activation curves.

matplotlib is an optional extra (``pip install -e '.[plot]'``), imported here only when
a picture is drawn, never on transcribe's plain path. The Agg canvas is used directly
(no pyplot): no global state, no display needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from drumtx.drums import Hit
from drumtx.errors import ConfigError

PANEL_SEC = 30.0  # a long file is drawn as stacked panels of this many seconds
INSTALL_HINT = "pip install -e '.[plot]'  (or: pip install matplotlib)"


def require_matplotlib() -> None:
    """Raise ConfigError, before any work, when matplotlib cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(
            "pictures (--plot, -f png) need matplotlib", hint=INSTALL_HINT
        )


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def draw_roll(
    ax,
    hits: Sequence[Hit],
    codes: Sequence[str],
    span: tuple[float, float],
    *,
    color: str = "tab:blue",
    label: str = "",
    offset: float = 0.0,
) -> None:
    """Hits in [span) as dots on one row per class (first class at the bottom), dot
    area by velocity; ``offset`` moves them within the row (two sets side by side)."""
    start, end = span
    inside = [h for h in hits if start <= h.time_sec < end]
    if inside:
        times = np.array([h.time_sec for h in inside])
        rows = np.array([h.cls for h in inside]) + offset
        sizes = 4 + 60 * (np.array([h.velocity for h in inside]) / 127.0) ** 2
        ax.scatter(times, rows, s=sizes, c=color, label=label, linewidths=0, zorder=3)
    elif label:
        ax.scatter([], [], c=color, label=label)
    ax.set_yticks(range(len(codes)), codes)
    ax.set_ylim(-0.7, len(codes) - 0.3)
    ax.set_xlim(start, end)


def draw_grid(ax, beats_sec: np.ndarray, downbeats_sec: np.ndarray, span) -> None:
    """Bar lines (solid) and beats (dotted) inside span."""
    start, end = span
    for t in beats_sec[(beats_sec >= start) & (beats_sec < end)]:
        ax.axvline(t, color="0.75", linewidth=0.6, linestyle=":", zorder=1)
    for t in downbeats_sec[(downbeats_sec >= start) & (downbeats_sec < end)]:
        ax.axvline(t, color="0.35", linewidth=0.9, zorder=1)


def drum_roll_png(
    hits: Sequence[Hit],
    codes: Sequence[str],
    beats_sec: np.ndarray,
    downbeats_sec: np.ndarray,
    duration_sec: float,
    title: str = "",
) -> bytes:
    """PNG of a whole file's hits: stacked panels of PANEL_SEC seconds."""
    n_panels = max(1, int(np.ceil(duration_sec / PANEL_SEC)))
    panel_sec = min(PANEL_SEC, max(duration_sec, 1.0))
    height = 0.6 + 0.28 * len(codes)
    figure = _figure(max(6.0, panel_sec * 0.55), height * n_panels + 0.4)
    axes = figure.subplots(n_panels, 1, squeeze=False)[:, 0]
    for k, ax in enumerate(axes):
        span = (k * PANEL_SEC, k * PANEL_SEC + panel_sec)
        draw_grid(ax, np.asarray(beats_sec), np.asarray(downbeats_sec), span)
        draw_roll(ax, hits, codes, span)
        ax.set_xlabel("seconds" if k == n_panels - 1 else "")
    if title:
        axes[0].set_title(title, loc="left", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def validation_image(
    onset: np.ndarray,
    reference: Sequence[Hit],
    predicted: Sequence[Hit],
    codes: Sequence[str],
    fps: float,
    seconds: float = 10.0,
) -> np.ndarray:
    """(H, W, 3) uint8 of a recording's first ``seconds``: reference (left of each
    row) beside predicted hits (right), the onset activation of each class drawn as a
    curve in its row, and a legend."""
    span = (0.0, min(seconds, len(onset) / fps))
    figure = _figure(12.0, 0.6 + 0.35 * len(codes))
    ax = figure.subplots()
    n = int(span[1] * fps)
    t = np.arange(n) / fps
    for c in range(len(codes)):
        ax.plot(t, c - 0.45 + 0.9 * onset[:n, c], color="0.6", linewidth=0.7,
                label="activation" if c == 0 else None, zorder=2)  # fmt: skip
    draw_roll(ax, reference, codes, span, color="tab:red", label="reference",
              offset=0.15)  # fmt: skip
    draw_roll(ax, predicted, codes, span, color="tab:green", label="predicted",
              offset=-0.15)  # fmt: skip
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set_xlabel("seconds")
    figure.tight_layout()
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()
