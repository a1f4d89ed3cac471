"""Shared CLI pieces: the --json option, result output, progress on stderr."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
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


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN, +-inf and values a float cannot hold (``1e400``), and,
    when given, values outside ``[min, max]`` (``min_open``/``max_open``: the bound excluded).
    Every float option of the commands uses it (click's ``FloatRange`` lets NaN through)."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> None:  # fmt: skip
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def _range(self) -> str:
        lo = "" if self.min is None else f"{self.min:g} {'<' if self.min_open else '<='} "
        hi = "" if self.max is None else f" {'<' if self.max_open else '<='} {self.max:g}"
        return f"{lo}x{hi}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        shown = " ".join(str(value).split())[:40]
        if isinstance(value, bool):
            self.fail(f"{shown!r} is not a number", param, ctx)
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{shown!r} is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{shown!r} is not a finite number (NaN, infinity and values beyond +-1.8e308 are refused)",
                      param, ctx)  # fmt: skip
        low = self.min is not None and (x <= self.min if self.min_open else x < self.min)
        high = self.max is not None and (x >= self.max if self.max_open else x > self.max)
        if low or high:
            self.fail(f"{shown} is not in the range {self._range()}", param, ctx)
        return x

    def __repr__(self) -> str:
        return f"FiniteFloat({self._range()})"


def seed_option(default: int | None = 0, help: str = "Seed of every random choice.") -> Callable:
    """``--seed``: an integer in [0, 2**32 - 1] (what numpy's and torch's generators take)."""
    from neurofl.runs.identity import SEED_MAX

    return click.option("--seed", type=click.IntRange(0, SEED_MAX), default=default,
                        show_default=default is not None, help=help)  # fmt: skip


device_option = click.option(
    "--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
    help="Where tensors are computed: auto picks CUDA when it is available (neurofl/runs/device.py).",
)

def _max_memory(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from neurofl.errors import UserError
    from neurofl.runs.memory import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except UserError as e:
        raise click.BadParameter(str(e).removeprefix("--max-memory "), ctx, param) from None


max_memory_option = click.option(
    "--max-memory", callback=_max_memory, default=None, metavar="SIZE",
    help="Memory the attacks may allocate (4G, 512M): victims are attacked in chunks that fit, or the run is "
         "refused naming what to lower [80% of the memory available at start] (neurofl/runs/memory.py).",
)


def budget_option(help: str) -> Callable:
    """``--max-memory SIZE`` as :data:`max_memory_option` parses it, with the command's own ``help``
    (what it keeps under the budget)."""
    return click.option("--max-memory", callback=_max_memory, default=None, metavar="SIZE", help=help)


iterations_option = click.option(
    "--iterations", default=None, type=click.IntRange(1, 1_000_000),
    help="Override every gradient-matching recipe's iterations (quick runs).",
)

local_steps_option = click.option(
    "--local-steps", default=1, show_default=True, type=click.IntRange(1, 1000),
    help="Each victim's update: its FedAvg weight delta after this many local SGD steps (1: its FedSGD gradient).",
)

minibatch_option = click.option(
    "--minibatch", default=None, type=click.IntRange(1, 4096),
    help="Samples per local step; it divides --batch-size and the steps cycle through the batch in order "
         "(--batch-size / --minibatch steps are one local epoch) [default: the whole batch every step].",
)


@contextlib.contextmanager
def input_checks() -> Iterator[None]:
    """Warnings raised while a user's file is checked (numpy's overflow on a 1e308 parameter, ...)
    are held back: a refusal (:class:`UserError`) stays the one line on stderr, and on success the
    held warnings are shown as they would have been."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:  # reached only without an exception
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def _same_place(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name the same file or folder (links, ``..`` and hard links
    followed); False when either does not exist."""
    import os

    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_not_input(out: Path | None, inputs: dict[str, Path | str | None], flag: str = "--out") -> None:
    """Refuse an output (``out``, a file or folder) that is, or resolves to, one of the command's
    ``inputs`` (name: path): ``import X.nir --out X.nir`` would overwrite its own input.

    Raises
    ------
    UserError
        One line naming ``flag`` and the input.
    """
    from neurofl.errors import UserError

    if out is None:
        return
    for name, path in inputs.items():
        if path is not None and str(path).strip() and _same_place(Path(out), Path(path)):
            raise UserError(f"{flag} {out}: is the input {name} {path}; write the output elsewhere")


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
    from neurofl.runs.runfolder import check_out_dir

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


data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Folder of on-disk datasets."
)


def splits_for(dataset: str, data_dir: Path | None, seed: int) -> Any:
    """The four-way split (:func:`neurofl.data.split_dataset`) of dataset ``dataset`` under ``seed``."""
    from neurofl.data import load_dataset, split_dataset

    return split_dataset(load_dataset(dataset, data_dir), seed)
