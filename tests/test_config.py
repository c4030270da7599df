"""Config: TOML, profiles, --set overrides, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumtx.cli import main
from drumtx.config import Config, load_config, parse_override
from drumtx.errors import ConfigError

REPO_TOML = Path(__file__).resolve().parents[1] / "drumtx.toml"


def test_repo_toml_matches_the_defaults():
    """drumtx.toml documents the defaults; it must not silently change them."""
    assert load_config(REPO_TOML) == Config()


def test_every_key_in_repo_toml_is_commented():
    body = REPO_TOML.read_text().split("[profiles", 1)[0]
    for line in body.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"uncommented key: {line}"


def test_profile_then_override_precedence():
    cfg = load_config(REPO_TOML, ["train.max_steps=7", "model.dropout=0"], "quick")
    assert cfg.model.preset == "tiny"  # from the profile
    assert cfg.train.max_steps == 7  # --set beats the profile
    assert cfg.model.dropout == 0.0  # an int widens to a float


def test_override_parses_toml_values_and_bare_strings():
    assert parse_override("train.lr=3e-4") == ("train", "lr", 3e-4)
    assert parse_override("storage.data_root=/data/x") == (
        "storage",
        "data_root",
        "/data/x",
    )
    assert parse_override("data.cache_in_ram=true")[2] is True


@pytest.mark.parametrize(
    "override, words",
    [
        ("trian.lr=1", ["unknown table", "did you mean 'train'"]),
        ("train.lrr=1", ["unknown key train.lrr", "did you mean 'lr'"]),
        ("train.batch_size='big'", ["train.batch_size", "int", "'big'"]),
        ("train.batch_size=0", ["train.batch_size", "out of range"]),
        ("model.preset='huge'", ["model.preset", "tiny, small, medium, base"]),
        ("transcribe.max_input_db=6.0", ["transcribe.max_input_db", "out of range"]),
        ("transcribe.min_input_db=-10.0", ["min_input_db = -10 is above", "-20"]),
        ("train.lr", ["table.key=value"]),
    ],
)
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(REPO_TOML, [override])
    for word in words:
        assert word in info.value.message


@pytest.mark.parametrize(
    "override, hint",
    [
        ("train.batch_size='big'", "--set train.batch_size=32"),
        ("train.compile=1", "--set train.compile=false"),
        ("train.lr='fast'", "--set train.lr=0.001"),
        ("data.music_dir=3", "--set data.music_dir=''"),
    ],
)
def test_a_wrong_type_is_shown_how_the_value_it_replaces_is_written(override, hint):
    with pytest.raises(ConfigError) as info:
        load_config(REPO_TOML, [override])
    assert info.value.hint is not None and info.value.hint.endswith(hint)
    table, key = override.split("=")[0].split(".")
    before = getattr(getattr(load_config(REPO_TOML, []), table), key)
    # what the hint says parses back to the value it replaces (TOML and --set agree)
    assert parse_override(hint.removeprefix("--set "))[2] == before


def test_unknown_table_in_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trainn]\nlr = 1.0\n")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_config(path)


def test_unknown_profile_lists_the_defined_ones():
    with pytest.raises(ConfigError) as info:
        load_config(REPO_TOML, profile="quik")
    assert "did you mean 'quick'" in info.value.message
    assert "full" in info.value.hint


def test_hop_must_divide_exactly():
    with pytest.raises(ConfigError, match="not a multiple"):
        load_config(None, ["audio.sample_rate=22050"])


def test_cli_config_error_exits_2(capsys):
    code = main(["doctor", "--set", "train.lrr=1", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "did you mean 'lr'" in err and "hint:" in err


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "1e9"])
def test_demo_refuses_a_training_time_it_cannot_keep(minutes, tmp_path, capsys):
    # 0 would pass on as train.time_limit_min's "no limit": 100,000 CPU steps
    code = main(["demo", "--minutes", minutes, "--dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "hint:" in err
    assert f"error: --minutes {float(minutes):g}" in err
    assert not (tmp_path / "d").exists()


def test_data_root_precedence(monkeypatch, tmp_path):
    from drumtx.cli import build_parser, load_cli_config

    monkeypatch.setenv("DRUMTX_DATA_ROOT", str(tmp_path / "env"))
    args = build_parser().parse_args(["doctor", "--config", str(REPO_TOML)])
    assert load_cli_config(args)[0].storage.data_root == str(tmp_path / "env")
    args = build_parser().parse_args(
        ["doctor", "--config", str(REPO_TOML), "--data-root", str(tmp_path / "flag")]
    )
    assert load_cli_config(args)[0].storage.data_root == str(tmp_path / "flag")


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from drumtx.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("overlap", ["0", "0.0", "0.25"])
def test_too_little_segment_overlap_is_refused_with_a_hint(overlap):
    """With no context a hit near a segment border decodes differently than in a
    whole-file pass; the minimum covers the model's conv and STFT context."""
    with pytest.raises(ConfigError, match="transcribe.overlap_sec") as info:
        load_config(REPO_TOML, [f"transcribe.overlap_sec={overlap}"])
    assert "--overlap" in (info.value.hint or "")
    assert load_config(REPO_TOML, ["transcribe.overlap_sec=0.5"]).transcribe


@pytest.mark.parametrize(
    "override, hint",
    [
        ("trian.lr=1", "tables: storage, audio, frontend"),
        ("data.gain_db_min=30.0", "--set data.gain_db_min="),
        ("data.loudness_db_min=-1.0", "--set data.loudness_db_min="),
        ("data.backing_db_min=40.0", "--set data.backing_db_min="),
        ("frontend.f_min_hz=13000.0", "--set frontend.f_max_hz="),
        ("frontend.f_max_hz=13000.0", "--set frontend.f_max_hz=12000.0"),
        ("decode.class_thresholds={KD='high'}", "class_thresholds.KD=0.5"),
        ("transcribe.overlap_sec=20.0", "--overlap 2"),
        ("train.lr=" + "[" * 3000 + "1" + "]" * 3000, "flat [list]"),
    ],
)
def test_every_config_error_has_a_hint(override, hint):
    with pytest.raises(ConfigError) as info:
        load_config(REPO_TOML, [override])
    assert info.value.hint is not None and hint in info.value.hint


@pytest.mark.parametrize(
    "text, hint",
    [
        ("[train]\nlr = \n", "fix the line it names"),
        ("[tarin]\nlr = 1\n", "tables: storage"),
        ("train = 3\n", "write [train] on a line of its own"),
        ("profiles = 3\n", "[profiles.NAME]"),
        ("\xff\xfe", "save it as UTF-8 text"),
    ],
)
def test_a_bad_config_file_gets_a_hint(tmp_path: Path, text: str, hint: str):
    path = tmp_path / "drumtx.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, [])
    assert info.value.hint is not None and hint in info.value.hint


def test_decode_exclusive_reads_pairs_and_refuses_a_malformed_one() -> None:
    from drumtx.config import exclusive_pairs

    assert exclusive_pairs(" oh/CR , CR/RD") == [("OH", "CR"), ("CR", "RD")]
    assert exclusive_pairs("") == []
    for bad in ("OH", "OH/OH", "OH/XX", "OH/CR/RD"):
        with pytest.raises(ConfigError, match="decode.exclusive"):
            load_config(overrides=[f"decode.exclusive={bad}"])


def test_decode_buzz_reads_pairs_and_refuses_a_malformed_one() -> None:
    from drumtx.config import buzz_pairs

    assert buzz_pairs(" sd<KD , HT<LT") == [("SD", "KD"), ("HT", "LT")]
    assert buzz_pairs("") == []
    assert load_config(overrides=["decode.buzz="]).decode.buzz == ""
    for bad in ("SD", "SD<SD", "SD<XX", "SD/KD", "SD<KD<HH"):
        with pytest.raises(ConfigError, match="decode.buzz"):
            load_config(overrides=[f"decode.buzz={bad}"])
    with pytest.raises(ConfigError, match="decode.buzz_threshold"):
        load_config(overrides=["decode.buzz_threshold=1.5"])
    for key in ("repeat_floor", "repeat_context"):
        with pytest.raises(ConfigError, match=f"decode.{key}"):
            load_config(overrides=[f"decode.{key}=-0.1"])
    assert load_config(overrides=["decode.repeat_floor=0"]).decode.repeat_floor == 0
    with pytest.raises(ConfigError, match="decode.repeat_classes"):
        load_config(overrides=["decode.repeat_classes='KD,XX'"])
    none = load_config(overrides=["decode.repeat_classes=''"])
    assert none.decode.repeat_classes == ""
