"""Installing drumtx: the torch floor, .ci/run's install steps, the packages CI needs.

.ci/run itself takes about 8 minutes; these tests run its install steps against stub
commands (apt-get, python) in a copy of the script, so nothing is installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# Every stub logs its name, its arguments and the variable .ci/run exports to pytest.
STUB = """#!/usr/bin/env bash
line="$(basename "$0") $* | require=${DRUMTX_REQUIRE_SYSTEM_PACKAGES:-unset}"
echo "$line" >>"$STUB_LOG"
case "$(basename "$0")" in
    id) echo 0 ;;
    apt-get)
        echo "E: Unable to locate package hydrogen-drumkits"; exit "$FAKE_APT_RC" ;;
    python3) [ "$1 $2" = "-m venv" ] && mkdir -p "$3/bin" && : >"$3/bin/activate" ;;
esac
exit 0
"""


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(path.read_text())


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def test_torch_floor_has_every_api_drumtx_calls() -> None:
    """torch.amp.GradScaler("cuda") (train.py) exists from torch 2.3 on."""
    import torch

    deps = _read_toml(REPO / "pyproject.toml")["project"]["dependencies"]
    floor = next(d for d in deps if re.match(r"torch\b", d))
    assert re.fullmatch(r"torch>=[\d.]+", floor), floor
    assert _version(floor) >= (2, 3), floor
    assert _version(floor) <= _version(torch.__version__)


def test_readme_and_ci_install_the_same_cpu_torch() -> None:
    """The README's install line works without local wheels: PyTorch's CPU index."""
    readme = _readme()
    ci_version = re.search(r"^TORCH_VERSION=(\S+)$", _ci_script(), re.M)
    assert ci_version is not None
    line = f"pip install torch=={ci_version.group(1)} --index-url {CPU_INDEX}"
    assert line in readme
    assert f"TORCH_INDEX_URL={CPU_INDEX}" in readme


def _ci_script() -> str:
    return (REPO / ".ci" / "run").read_text()


def _readme_test_command() -> str:
    """The command after `pip install -e ".[test]" &&` in the README."""
    found = re.search(r'^pip install -e "\.\[test\]" && (.+)$', _readme(), re.M)
    assert found is not None, "the README lost its test command"
    return found.group(1).strip()


def _readme() -> str:
    return (REPO / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    """CI runs exactly what the README tells a contributor to run, as its last line."""
    last = _ci_script().rstrip().splitlines()[-1]
    assert last == _readme_test_command()
    assert "-n " in last  # the workers come from pytest-xdist: the test extra has it
    extras = _read_toml(REPO / "pyproject.toml")["project"]["optional-dependencies"]
    assert any(re.match(r"pytest-xdist\b", d) for d in extras["test"])


def _run_ci(tmp_path: Path, apt_rc: int, **env: str) -> tuple[int, str, list[str]]:
    """.ci/run's copy in tmp_path with stub commands; (exit code, stderr, stub log)."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    (tmp_path / ".ci").mkdir(parents=True)
    script = tmp_path / ".ci" / "run"
    script.write_text(_ci_script())
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("apt-get", "id", "python3", "python"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    log = tmp_path / "stub.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("DRUMTX_")}
    base.pop("TORCH_INDEX_URL", None)
    full_env = {**base, "PATH": f"{stubs}:{os.environ['PATH']}", "CI": "true",
                "STUB_LOG": str(log), "FAKE_APT_RC": str(apt_rc), **env}  # fmt: skip
    result = subprocess.run(["bash", str(script)], env=full_env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    lines = log.read_text().splitlines() if log.exists() else []
    return result.returncode, result.stderr, lines


def test_ci_fails_when_its_apt_install_fails(tmp_path: Path) -> None:
    """A broken apt step must turn CI red, not let the kit and SoundFont tests skip."""
    code, err, calls = _run_ci(tmp_path, apt_rc=100)
    assert code == 1
    assert "apt-get could not install" in err and "Unable to locate package" in err
    assert [c.split()[0] for c in calls] == ["id", "apt-get", "apt-get"]  # + update
    assert not any(c.startswith("python") for c in calls)  # stopped before pip


def test_ci_may_skip_system_packages_when_told(tmp_path: Path) -> None:
    code, _, calls = _run_ci(tmp_path, 100, DRUMTX_REQUIRE_SYSTEM_PACKAGES="0")
    assert code == 0
    assert calls[-1] == f"{_readme_test_command()} | require=0"


def test_ci_installs_local_torch_by_default_and_a_given_index_else(
    tmp_path: Path,
) -> None:
    code, _, calls = _run_ci(tmp_path / "a", apt_rc=0)
    assert code == 0
    torch_line = next(c for c in calls if "torch==" in c)
    assert "--index-url" not in torch_line  # CI reaches no host but PyPI and Debian
    assert calls[-1] == f"{_readme_test_command()} | require=1"

    code, _, calls = _run_ci(tmp_path / "b", apt_rc=0, TORCH_INDEX_URL=CPU_INDEX)
    assert code == 0
    torch_line = next(c for c in calls if "torch==" in c)
    assert f"--index-url {CPU_INDEX}" in torch_line
    pip_lines = [c for c in calls if " pip install" in c]
    assert pip_lines[0] == torch_line  # torch first: `-e .` then keeps the CPU build


@pytest.mark.skipif(
    os.environ.get("DRUMTX_REQUIRE_SYSTEM_PACKAGES") != "1",
    reason="the system packages are required only under .ci/run "
    "(DRUMTX_REQUIRE_SYSTEM_PACKAGES=1)",
)
def test_packages_ci_installs_are_usable() -> None:
    """What the Hydrogen-kit, SoundFont and picture tests would otherwise skip without.
    """
    from drumtx import synth
    from drumtx.synth import soundfont

    kits = {p.name for p in synth.list_hydrogen_kits()}
    assert {"The Black Pearl 1.0", "rumpf_kit_z01_h2"} <= kits, (
        f"Hydrogen kits in {synth.HYDROGEN_ROOT}: {sorted(kits)}; "
        "apt-get install hydrogen-drumkits"
    )
    assert soundfont.fluidsynth_available(), (
        "FluidSynth: apt-get install libfluidsynth3; pip install -e '.[render]'"
    )
    assert soundfont.list_soundfonts(), "apt-get install timgm6mb-soundfont"
    assert importlib.util.find_spec("matplotlib"), "pip install -e '.[plot]'"
