"""Running the command line in-process from a test, with its exit code and captured output."""

from __future__ import annotations

from typing import Any


def run_captured(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``neurofl ARGV`` in this process: (exit code, stdout, stderr) as pytest's ``capsys`` caught
    them; what the test printed before the call is dropped first."""
    from neurofl.cli import main

    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
