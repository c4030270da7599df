"""console: whole lines when piped; progress as plain lines or nothing when piped."""

from __future__ import annotations

import ast
from pathlib import Path

from drumtx.console import Progress, make_console

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "drumtx"


def test_a_long_line_stays_one_line_when_piped(capsys) -> None:
    path = "/data/" + "very-long-folder-name/" * 8 + "recordings.json"
    make_console().print(f"wrote {path} (78056 bytes)")
    make_console(stderr=True).print(f"error: {path} is missing")
    out, err = capsys.readouterr()
    assert out == f"wrote {path} (78056 bytes)\n"
    assert err == f"error: {path} is missing\n"


def test_progress_prints_plain_lines_off_a_terminal(capsys) -> None:
    console = make_console()
    with Progress(console, "preprocess train", 3, unit="recordings") as progress:
        progress.advance()  # the first interval has not passed: no line yet
        progress.advance(2)  # the last item always gets a line
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("preprocess train: 3/3 recordings, ")
    assert "recordings/s, ETA 0 s" in lines[0]


def test_progress_can_stay_silent_off_a_terminal(capsys) -> None:
    for kwargs in ({"log_every_sec": None}, {"enabled": False}):
        with Progress(make_console(), "transcribing", 2, **kwargs) as progress:
            progress.advance(2)
            progress.note("validation F1 0.5")
    assert capsys.readouterr().out == "validation F1 0.5\n" * 2


def test_every_console_comes_from_make_console() -> None:
    """rich wraps at 80 columns off a terminal unless told not to: one factory
    decides that for the whole package."""
    makers = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "console.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name == "Console":
                    makers.append(f"{path.name}:{node.lineno}")
    assert makers == []


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """`drumtx transcribe --list-models | head -1`: once the reader has gone, drumtx
    stops with SIGPIPE's status (141) and no traceback, as cat does."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "drumtx", "transcribe", "--list-models"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before drumtx writes its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
