"""Shared CLI pieces: the --json option, result output, progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")


def emit(result: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """Print ``result`` as JSON on stdout, or call ``human`` to print it for people."""
    if as_json:
        from neurofl.report import json_safe

        click.echo(json.dumps(json_safe(result), default=str, allow_nan=False))
    else:
        human()


def progress() -> Progress:
    """A rich progress bar on stderr (stdout stays clean for --json)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )


def seed_option(default: int | None = 0, help: str = "Seed of every random choice.") -> Callable:
    """``--seed``: an integer in [0, 2**32 - 1] (what numpy's and torch's generators take)."""
    from neurofl.identity import SEED_MAX

    return click.option("--seed", type=click.IntRange(0, SEED_MAX), default=default,
                        show_default=default is not None, help=help)  # fmt: skip


iterations_option = click.option(
    "--iterations", default=None, type=click.IntRange(1, 1_000_000),
    help="Override every gradient-matching recipe's iterations (quick runs).",
)
