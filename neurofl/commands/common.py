"""Shared CLI pieces: the --json option, result output, progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
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


class _LazyProgress(Progress):
    """A progress bar that appears only once it first moves: a run refused before its first unit
    of work (a bad file, a mismatched resume) prints only its one error line."""

    _shown = False

    def __enter__(self) -> _LazyProgress:
        return self

    def _show(self) -> None:
        if not self._shown:
            self._shown = True
            self.start()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._show()
        super().update(*args, **kwargs)

    def advance(self, *args: Any, **kwargs: Any) -> None:
        self._show()
        super().advance(*args, **kwargs)

    def __exit__(self, *exc: Any) -> None:
        if self._shown:
            self.stop()


def progress() -> Progress:
    """A rich progress bar on stderr (stdout stays clean for --json), shown from its first update."""
    return _LazyProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )


def attack_progress(bar: Progress) -> Callable[[str, str, int, int], None]:
    """The leakage commands' progress callback: one bar per (row, attack), created on its first report."""
    tasks: dict[tuple[str, str], Any] = {}

    def on_progress(row: str, name: str, done: int, total: int) -> None:
        if (row, name) not in tasks:
            tasks[(row, name)] = bar.add_task(f"{name} on {row}", total=total)
        bar.update(tasks[(row, name)], completed=done)

    return on_progress


def seed_option(default: int | None = 0, help: str = "Seed of every random choice.") -> Callable:
    """``--seed``: an integer in [0, 2**32 - 1] (what numpy's and torch's generators take)."""
    from neurofl.identity import SEED_MAX

    return click.option("--seed", type=click.IntRange(0, SEED_MAX), default=default,
                        show_default=default is not None, help=help)  # fmt: skip


device_option = click.option(
    "--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
    help="Where tensors are computed: auto picks CUDA when it is available (neurofl/device.py).",
)

iterations_option = click.option(
    "--iterations", default=None, type=click.IntRange(1, 1_000_000),
    help="Override every gradient-matching recipe's iterations (quick runs).",
)


def check_out_file(out: Path, flag: str = "--out", companions: tuple[str, ...] = ()) -> Path:
    """``out`` as a file a command may write (atomically): not a folder or special file, in a
    folder that can be created and written, not under a system folder; ``companions`` are
    suffixes of files written beside it (``.resume``), checked alike.

    Raises
    ------
    UserError
        One line naming ``flag`` and what is wrong.
    """
    import stat

    from neurofl.errors import UserError
    from neurofl.runfolder import check_out_dir

    out = Path(out)
    if out.name in ("", ".", ".."):
        raise UserError(f"{flag} {out}: needs a file name")
    check_out_dir(out.parent, flag)
    for path in (out, *(out.with_name(out.name + c) for c in companions)):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise UserError(f"{flag} {path}: cannot inspect it ({e.strerror})") from None
        if stat.S_ISDIR(mode):
            raise UserError(f"{flag} {path}: is a folder; give a file name")
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise UserError(f"{flag} {path}: exists and is not a regular file")
    return out
