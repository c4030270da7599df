"""A bad command line ends as every drumtx error does: usage, error:, hint:."""

from __future__ import annotations

import pytest

from drumtx.cli import main
from drumtx.config import load_config
from drumtx.errors import ConfigError


@pytest.mark.parametrize(
    ("argv", "usage", "error", "hint"),
    [
        (["transcribe", "--thresold", "0.5", "x.wav"], "usage: drumtx transcribe",
         "error: unrecognized arguments: --thresold",
         "hint: did you mean --threshold? drumtx transcribe --help lists them"),
        (["transcibe", "x.wav"], "usage: drumtx [-h]",
         "error: argument COMMAND: invalid choice: 'transcibe'",
         "hint: did you mean transcribe? drumtx --help lists them"),
        (["evaluate", "--split", "tset"], "usage: drumtx evaluate",
         "error: argument --split: invalid choice: 'tset'",
         "hint: did you mean test?"),
        (["transcribe", "--zzz", "x.wav"], "usage: drumtx transcribe",
         "error: unrecognized arguments: --zzz",
         "hint: drumtx transcribe --help lists them"),
        ([], "usage: drumtx [-h]", "error: the following arguments are required",
         "hint: drumtx --help lists them"),
    ],
    ids=["option", "command", "choice", "nothing-near", "no-command"],
)
def test_a_bad_command_line_says_what_was_meant(capsys, argv, usage, error, hint):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(usage)  # the misused command's own usage
    assert any(line.startswith(error) for line in lines), lines
    assert lines[-1].startswith(hint)


def test_a_bad_config_value_says_where_it_can_come_from() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["transcribe.segment_sec=0.1"])
    assert "out of range" in err.value.message
    assert "--set transcribe.segment_sec=..." in err.value.hint
    assert "[transcribe] table's segment_sec in drumtx.toml" in err.value.hint
    with pytest.raises(ConfigError) as err:
        load_config(None, ["transcribe.meter='5/4'"])
    assert "did you mean '4/4'?" in err.value.message and err.value.hint
