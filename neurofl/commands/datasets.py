"""`neurofl datasets list [--data-dir D]`: every dataset, its source, shape, classes, availability."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from neurofl.commands.common import emit, json_option
from neurofl.data.paths import DATA_ENV, optional_data_dir
from neurofl.data.registry import available_datasets


@click.group()
def datasets() -> None:
    """Datasets: embedded ones and those read from the data dir."""


@datasets.command("list")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Folder holding on-disk datasets (default: ${DATA_ENV}).",
)
@json_option
def list_(data_dir: Path | None, as_json: bool) -> None:
    """List every dataset and whether it can be loaded now."""
    from neurofl.data.registry import is_available

    root = optional_data_dir(data_dir)
    rows = {
        name: {
            "source": info.source,
            "shape": info.shape,
            "classes": info.classes,
            "embedded": info.embedded,
            "available": is_available(info, root),
        }
        for name, info in available_datasets().items()
    }

    def human() -> None:
        from rich.console import Console

        t = Table("name", "source", "shape", "classes", "available")
        for name, r in rows.items():
            status = "embedded" if r["embedded"] else ("yes" if r["available"] else "no")
            t.add_row(name, str(r["source"]), str(r["shape"]), str(r["classes"]), status)
        Console(width=160).print(t)
        if root is None:
            click.echo(f"data dir: not set (pass --data-dir or set {DATA_ENV})")

    emit({"data_dir": str(root) if root else None, "datasets": rows}, as_json, human)
