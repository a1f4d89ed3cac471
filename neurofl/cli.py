"""The `neurofl` command line: parses, calls the library, prints.

Exit codes: 0 success, 2 bad input (one line on stderr), 1 internal error, 130 interrupted.
Commands live in ``neurofl/commands/`` and are imported only when used (lava is slow to import).
"""

from __future__ import annotations

import os
import sys
from typing import Literal

# Nothing but the standard library is imported before main() installs the exit-code contract, so
# Ctrl-C at any moment (even during the seconds lava takes to import) exits 130 with one line.

# name -> "module:attribute" of a click command
COMMANDS = {
    "profiles": "neurofl.commands.profiles:profiles",
    "datasets": "neurofl.commands.datasets:datasets",
    "evaluate": "neurofl.commands.evaluate:evaluate",
    "attack": "neurofl.commands.attack:attack",
    "train": "neurofl.commands.train:train",
    "export": "neurofl.commands.deploy:export",
    "verify": "neurofl.commands.deploy:verify",
    "import": "neurofl.commands.nir:import_",
    "fl": "neurofl.commands.fl:fl",
    "study": "neurofl.commands.study:study",
    "privacy-utility": "neurofl.commands.privacy_utility:privacy_utility",
    "report": "neurofl.commands.report:report",
}

INTERRUPTED = "interrupted: rerun the same command (same --out) to resume"

# Known import-time notices of lava-dl's dependencies, printed (not warned) on stdout/stderr: they
# are dropped; anything else printed during the import is passed on to stderr.
IMPORT_NOISE = (
    "WARNING: Prophesee Dataset Toolbox could not be found!",
    "Only Prophesee DVS demo will not run properly.",
    "Please install it from https://github.com/prophesee-ai/prophesee-automotive-dataset-toolbox",
    "No CUDA runtime is found, using CUDA_HOME=",
)

# Warnings that are known noise from the libraries neurofl drives, by category and message (a
# regular expression matched at the start); every other warning is shown.
KNOWN_WARNINGS: tuple[tuple[Literal["ignore"], str, str], ...] = (
    # (action, message, category name); Python's default filters already hide Deprecation-,
    # Import- and ResourceWarnings outside __main__
    ("ignore", r"Tip: In future versions of Ray, Ray will no longer override accelerator", "FutureWarning"),
)


def _filter_known_warnings() -> None:
    """Silence only the warnings listed in :data:`KNOWN_WARNINGS` (this process; Ray workers
    inherit no blanket ``PYTHONWARNINGS=ignore``)."""
    import builtins
    import warnings

    for action, message, category in KNOWN_WARNINGS:
        warnings.filterwarnings(action, message=message, category=getattr(builtins, category))


def quiet_imports() -> None:
    """Import lava-dl with its known import-time notices dropped; other output is passed on."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                import lava.lib.dl.slayer  # noqa: F401
            except ImportError:
                pass
    finally:
        for line in (out.getvalue() + "\n" + err.getvalue()).splitlines():
            text = line.strip()
            if text and not any(text.startswith(n) or n in text for n in IMPORT_NOISE):
                print(line, file=sys.stderr)


def _cli():  # noqa: ANN202 - click objects are built here, after the contract is in place
    import importlib
    import importlib.util

    import click

    class LazyGroup(click.Group):
        """A group whose subcommands are imported on first use."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            return [n for n, target in COMMANDS.items() if importlib.util.find_spec(target.split(":")[0])]

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            target = COMMANDS.get(cmd_name)
            if target is None or not importlib.util.find_spec(target.split(":")[0]):
                return None
            module, attr = target.split(":")
            return getattr(importlib.import_module(module), attr)

    @click.group(cls=LazyGroup)
    @click.version_option(package_name="neurofl")
    @click.option(
        "--threads",
        type=int,
        default=None,
        help="Torch CPU threads per process [default: env NEUROFL_THREADS, else OMP_NUM_THREADS, else 1: "
        "a second thread is up to 2x faster on an idle machine, 5x slower on a busy one (results/bench_threads.json)].",
    )
    def cli(threads: int | None) -> None:
        """How much private data leaks through federated updates of SNNs on neuromorphic chips."""
        from neurofl.runs.threads import apply_thread_policy

        apply_thread_policy(threads)

    return cli


_interrupted_line_shown = False


def _interrupted() -> None:
    """Print the resume line once (a second Ctrl-C while it is printed does not repeat it)."""
    global _interrupted_line_shown
    if not _interrupted_line_shown:
        _interrupted_line_shown = True
        try:
            sys.stderr.write(INTERRUPTED + "\n")
            sys.stderr.flush()
        except (OSError, ValueError, RuntimeError):  # stderr closed, or re-entered while it was writing
            os.write(2, (INTERRUPTED + "\n").encode())


def _exit_130_on_sigint(signum: int, frame: object) -> None:
    """SIGINT once the command has finished (interpreter shutdown: atexit, thread joins, library
    teardown), where a KeyboardInterrupt would escape every handler and the process die by the
    signal: the output is complete, so flush it, print the resume line and exit 130 at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):
            pass
    _interrupted()
    os._exit(130)


def _guard_shutdown() -> None:
    """Install :func:`_exit_130_on_sigint` where Python's own SIGINT handler is (not where SIGINT is
    ignored, as in a process started with ``nohup``)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _exit_130_on_sigint)


def main(argv: list[str] | None = None) -> None:
    """Entry point with the exit-code contract: Ctrl-C at any moment, the interpreter's shutdown
    after the command included, exits 130 with the resume line. As the process's entry point
    (``argv`` None: the ``neurofl`` script, ``python -m neurofl``) it sets the process's allocator
    policy (:mod:`neurofl.runs.allocator`) and owns SIGINT until the process ends; called
    in-process with ``argv`` (tests, :func:`run`) it leaves both alone."""
    try:
        try:
            _main(argv)
        finally:  # the command is done (or stopping): from here on SIGINT exits 130 directly
            if argv is None:
                _guard_shutdown()
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(130)


def _main(argv: list[str] | None) -> None:
    import click

    from neurofl.errors import UserError

    _filter_known_warnings()
    quiet_imports()
    try:
        if argv is None:  # the process's entry point: its allocator (not a test's or notebook's)
            from neurofl.runs.allocator import keep_freed_memory

            keep_freed_memory()
        _cli().main(args=argv, prog_name="neurofl", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _interrupted()
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # `neurofl` alone: the help, as --help shows it
        click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
        sys.exit(0)
    except click.ClickException as e:
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the contract: one line, exit 1
        if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":  # numpy/Python, torch (CPU, CUDA)
            click.echo(f"error: out of memory ({type(e).__name__}): lower --max-memory (smaller chunks of victims), "
                       "--batch-size or --victims; rerun the same command to resume", err=True)  # fmt: skip
            sys.exit(2)
        first = " ".join(str(e).split())[:300]
        click.echo(
            f"internal error: {type(e).__name__}: {first} (please report; set NEUROFL_DEBUG=1 for a traceback)",
            err=True,
        )
        if os.environ.get("NEUROFL_DEBUG"):
            raise
        sys.exit(1)


def run(argv: list[str]) -> int:
    """Run the CLI in-process and return its exit code (for tests and notebooks)."""
    global _interrupted_line_shown
    try:
        main(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    finally:
        _interrupted_line_shown = False
    return 0


def __getattr__(name: str):  # noqa: ANN202 - ``neurofl.cli.cli`` (the click group) for callers that use it
    if name == "cli":
        return _cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
