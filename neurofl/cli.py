"""The `neurofl` command line: parses, calls the library, prints.

Exit codes: 0 success, 2 bad input (one line on stderr), 1 internal error, 130 interrupted.
Commands live in ``neurofl/commands/`` and are imported only when used (lava is slow to import).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

import click

from neurofl.errors import UserError

# name -> "module:attribute" of a click command
COMMANDS = {
    "profiles": "neurofl.commands.profiles:profiles",
    "datasets": "neurofl.commands.datasets:datasets",
    "evaluate": "neurofl.commands.evaluate:evaluate",
    "attack": "neurofl.commands.attack:attack",
    "train": "neurofl.commands.deploy:train",
    "export": "neurofl.commands.deploy:export",
    "verify": "neurofl.commands.deploy:verify",
    "fl": "neurofl.commands.fl:fl",
}


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
def cli() -> None:
    """How much private data leaks through federated updates of SNNs on neuromorphic chips."""


def quiet_imports() -> None:
    """Silence import-time notices of lava-dl (Prophesee toolbox, CUDA) and library warnings."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            import lava.lib.dl.slayer  # noqa: F401
        except ImportError:
            pass


def main(argv: list[str] | None = None) -> None:
    """Entry point with the exit-code contract."""
    quiet_imports()
    try:
        cli.main(args=argv, prog_name="neurofl", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted: rerun the same command (same --out) to resume", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the contract: one line, exit 1
        click.echo(
            f"internal error: {type(e).__name__}: {e} (please report; set NEUROFL_DEBUG=1 for a traceback)", err=True
        )
        if os.environ.get("NEUROFL_DEBUG"):
            raise
        sys.exit(1)


def run(argv: list[str]) -> int:
    """Run the CLI in-process and return its exit code (for tests and notebooks)."""
    try:
        main(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    return 0
