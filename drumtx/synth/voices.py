"""Synthesised drum voices and the random timbre of a synth kit.

A voice is a list of components (audio, weight, velocity slope): the layer for velocity
v in [0, 1] mixes weight * (1 + slope * (v - 0.5)) of each, so noise and clicks
(positive slope) grow with velocity; ``SynthKit`` then applies a velocity-dependent
lowpass. ``draw_params`` draws every tuning, decay, filter and mix of one kit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from drumtx.synth.dsp import exp_decay, metal, noise, ring_samples, sos_filter, sweep

Component = tuple[np.ndarray, float, float]  # (audio (n,), weight, velocity slope)
VoiceFn = Callable[[dict, np.random.Generator, int], list[Component]]


def _kick(p: dict, rng: np.random.Generator, sr: int) -> list[Component]:
    n = ring_samples(sr, p["decay"], 0.9)
    body = sweep(n, sr, p["f_start"], p["f_end"], p["sweep"]) * exp_decay(
        n, sr, p["decay"]
    )
    body = np.tanh(p["drive"] * body) / np.tanh(p["drive"])
    n_click = int(sr * p["click_sec"])
    click = np.zeros(n, np.float32)
    click[:n_click] = noise(n_click, rng, 0.0) * exp_decay(
        n_click, sr, p["click_sec"] / 3
    )
    click = sos_filter(click, sr, "highpass", p["click_hz"])
    return [(body, 1.0, 0.3), (click, p["click"], 1.6)]


def _snare(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    n = ring_samples(sr, max(p["noise_decay"], p["tone_decay"]), 0.7)
    tone_env = exp_decay(n, sr, p["tone_decay"])
    tone = sweep(n, sr, p["f0"] * 1.25, p["f0"], 0.01) + 0.6 * sweep(
        n, sr, p["f0"] * p["ratio"] * 1.2, p["f0"] * p["ratio"], 0.01
    )
    wires = sos_filter(noise(n, rng, p["colour"]), sr, "bandpass", p["band"])
    wires *= exp_decay(n, sr, p["noise_decay"])
    if kind == "cross_stick":  # a short woody click instead of head + wires
        m = ring_samples(sr, 0.02, 0.2)
        knock = sweep(m, sr, p["stick_hz"] * 1.3, p["stick_hz"], 0.004)
        knock *= exp_decay(m, sr, p["stick_decay"])
        return [(knock, 1.0, 0.3), (wires[:m] * exp_decay(m, sr, 0.006), 0.4, 1.0)]
    parts = [(tone * tone_env, 1.0 - p["noise_mix"], 0.2), (wires, p["noise_mix"], 1.2)]
    if kind == "rimshot":  # the stick hits rim and head: a loud ringing crack
        ring = np.sin(2 * np.pi * p["rim_hz"] * np.arange(n) / sr).astype(np.float32)
        parts.append((ring * exp_decay(n, sr, 0.03), 0.5, 0.8))
    return parts


def _hat(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    decay = {
        "closed": p["closed_decay"],
        "pedal": p["pedal_decay"],
        "open": p["open_decay"],
    }
    d = decay[kind.removesuffix("_edge")]
    n = ring_samples(sr, d, 1.6)
    freqs = [p["base_hz"] * r for r in p["ratios"]]
    hp = p["hp_hz"] * (0.7 if kind.endswith("_edge") else 1.0)
    core = sos_filter(metal(n, sr, freqs, rng), sr, "highpass", hp)
    hiss = sos_filter(noise(n, rng, p["colour"]), sr, "highpass", hp * 1.1)
    env = exp_decay(n, sr, d)
    if kind == "pedal":  # the "chick": softer top, a little low thump
        return [(core * env, 0.6, 0.3), (hiss * env, 0.3, 0.6)]
    return [
        (core * env, 1.0 - p["noise_mix"], 0.4),
        (hiss * env, p["noise_mix"], 1.2),
    ]


def _tom(p: dict, rng: np.random.Generator, sr: int, rim: bool) -> list[Component]:
    n = ring_samples(sr, p["decay"], 1.2)
    body = sweep(n, sr, p["f0"] * p["bend"], p["f0"], p["sweep"]) * exp_decay(
        n, sr, p["decay"]
    )
    over = sweep(n, sr, p["f0"] * 1.6 * p["bend"], p["f0"] * 1.6, p["sweep"])
    over *= exp_decay(n, sr, p["decay"] * 0.4)
    hit = sos_filter(noise(n, rng, 0.3), sr, "bandpass", (p["f0"] * 4, p["f0"] * 20))
    hit *= exp_decay(n, sr, 0.008)
    parts = [(body, 1.0, 0.2), (over, 0.35, 0.6), (hit, p["attack"], 1.5)]
    if rim:
        ring = np.sin(2 * np.pi * p["rim_hz"] * np.arange(n) / sr).astype(np.float32)
        parts.append((ring * exp_decay(n, sr, 0.025), 0.5, 0.8))
    return parts


def _cymbal(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    d = p["decay"] * (0.8 if kind == "edge" else 1.0)
    n = ring_samples(sr, d, 3.0)
    freqs = p["base_hz"] * np.exp(rng.uniform(0, np.log(p["spread"]), p["n_partials"]))
    wash = sos_filter(metal(n, sr, freqs, rng), sr, "highpass", p["hp_hz"])
    hiss = sos_filter(noise(n, rng, p["colour"]), sr, "highpass", p["hp_hz"])
    env = exp_decay(n, sr, d) * (1 - np.exp(-np.arange(n) / (0.002 * sr)))
    parts = [(wash * env, 1 - p["noise_mix"], 0.5), (hiss * env, p["noise_mix"], 1.2)]
    if kind == "edge":
        parts.append((hiss * exp_decay(n, sr, d * 0.3), 0.5, 1.0))
    if kind == "bell":  # a few strong low partials ring over the wash
        t = np.arange(n) / sr
        bell = sum(np.sin(2 * np.pi * p["bell_hz"] * r * t) for r in (1.0, 2.32, 3.71))
        parts = [(bell * exp_decay(n, sr, d * 0.7), 1.0, 0.3)] + parts[:1]
    return [(np.asarray(a, np.float32), w, s) for a, w, s in parts]


# ---------------------------------------------------------------- a kit's timbre


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _tom_params(rng: np.random.Generator, f0: float) -> dict:
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    return {"f0": f0, "bend": u(1.05, 1.6), "sweep": lu(0.02, 0.15),
            "decay": lu(0.15, 0.55), "attack": u(0.1, 0.5),
            "rim_hz": lu(500, 1500)}  # fmt: skip


def _cymbal_params(rng: np.random.Generator) -> dict:
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    return {"base_hz": lu(250, 600), "spread": u(8, 25),
            "n_partials": int(rng.integers(8, 24)), "hp_hz": lu(1500, 5000),
            "colour": u(0, 0.5), "noise_mix": u(0.2, 0.7), "decay": lu(0.5, 1.4),
            "bell_hz": lu(500, 1100)}  # fmt: skip


def draw_params(rng: np.random.Generator) -> dict[str, dict]:
    """One kit's timbre: tunings, decays, filters, noise colours and mixes."""
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    toms_hz = sorted((lu(65, 105), lu(105, 150), lu(150, 240)))  # low < mid < high
    return {
        "kick": {"f_start": lu(90, 250), "f_end": lu(38, 65), "sweep": lu(0.015, 0.08),
                 "decay": lu(0.12, 0.45), "drive": u(1.0, 3.0), "click": u(0.1, 0.8),
                 "click_sec": u(0.002, 0.008), "click_hz": lu(1000, 5000)},
        "snare": {"f0": lu(150, 280), "ratio": u(1.4, 1.9),
                  "tone_decay": lu(0.04, 0.15),
                  "noise_decay": lu(0.08, 0.3), "noise_mix": u(0.4, 0.85),
                  "colour": u(0, 0.6), "band": (lu(700, 2500), lu(5000, 12000)),
                  "stick_hz": lu(350, 900), "stick_decay": lu(0.01, 0.04),
                  "rim_hz": lu(700, 1800)},
        "hat": {"base_hz": lu(250, 600), "ratios": (1.0, 1.48, 1.65, 2.03, 2.62, 3.19),
                "hp_hz": lu(4000, 9000), "colour": u(0, 0.4), "noise_mix": u(0.2, 0.7),
                "closed_decay": lu(0.015, 0.06), "pedal_decay": lu(0.01, 0.035),
                "open_decay": lu(0.2, 0.7)},
        "tom_low": _tom_params(rng, toms_hz[0]),
        "tom_mid": _tom_params(rng, toms_hz[1]),
        "tom_high": _tom_params(rng, toms_hz[2]),
        "crash1": _cymbal_params(rng), "crash2": _cymbal_params(rng),
        "ride": {**_cymbal_params(rng), "decay": lu(1.0, 2.5),
                 "noise_mix": u(0.05, 0.3), "hp_hz": lu(2000, 6000)},
        "mix": {"bright_lo_hz": lu(1200, 4000), "bright_hi_hz": lu(9000, 18000),
                "vel_exponent": u(1.3, 2.2), "fade_sec": u(0.005, 0.02),
                "level": {k: u(0.5, 1.0)
                          for k in ("kick", "snare", "hat", "tom", "cym")}},
    }  # fmt: skip


def voice_table(params: dict[str, dict]) -> dict[str, tuple[VoiceFn, dict, str]]:
    """voice -> (synthesis function, its parameters, level group)."""
    table: dict[str, tuple[VoiceFn, dict, str]] = {
        "kick": (_kick, params["kick"], "kick")
    }
    for kind in ("snare", "cross_stick", "rimshot"):
        table[kind] = (
            lambda p, r, s, k=kind: _snare(p, r, s, k),
            params["snare"],
            "snare",
        )
    for voice, kind in (("hh_closed", "closed"), ("hh_closed_edge", "closed_edge"),
                        ("hh_pedal", "pedal"), ("hh_open", "open"),
                        ("hh_open_edge", "open_edge")):  # fmt: skip
        table[voice] = (lambda p, r, s, k=kind: _hat(p, r, s, k), params["hat"], "hat")
    for tom in ("tom_low", "tom_mid", "tom_high"):
        table[tom] = (lambda p, r, s: _tom(p, r, s, False), params[tom], "tom")
        table[tom + "_rim"] = (lambda p, r, s: _tom(p, r, s, True), params[tom], "tom")
    for cym in ("crash1", "crash2", "ride"):
        edge = "ride_edge" if cym == "ride" else cym + "_edge"
        table[cym] = (lambda p, r, s: _cymbal(p, r, s, "bow"), params[cym], "cym")
        table[edge] = (lambda p, r, s: _cymbal(p, r, s, "edge"), params[cym], "cym")
    table["ride_bell"] = (
        lambda p, r, s: _cymbal(p, r, s, "bell"),
        params["ride"],
        "cym",
    )
    return table


def jitter_params(p: dict, rng: np.random.Generator) -> dict:
    """Round-robin variation: tunings move ~1 %, decays ~5 %."""
    out = {}
    for key, val in p.items():
        if isinstance(val, float) and key.endswith(("_hz", "f0", "f_start", "f_end")):
            val = val * (1 + rng.normal(0, 0.01))
        elif isinstance(val, float) and "decay" in key:
            val = val * (1 + rng.normal(0, 0.05))
        out[key] = val
    return out
