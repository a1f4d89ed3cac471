"""`neurofl profiles list | show NAME|PATH`."""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from neurofl.commands.common import emit, json_option
from neurofl.profiles import load_profile, shipped_profiles


@click.group()
def profiles() -> None:
    """Hardware profiles (chip constraints)."""


@profiles.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the shipped profiles."""
    rows = {name: load_profile(name) for name in shipped_profiles()}

    def human() -> None:
        t = Table("name", "weights", "update", "spikes", "T", "description")
        for name, p in rows.items():
            w = f"{p.weights.bits}-bit" if p.weights.quantized else "float"
            u = f"int{p.update.bits} ({p.update.rounding})" if p.update.format == "int" else "float32"
            t.add_row(name, w, u, p.spikes.payload, str(p.simulation.time_steps), p.description)
        click.echo(_render(t))

    emit({"profiles": {n: dataclasses.asdict(p) for n, p in rows.items()}}, as_json, human)


@profiles.command("show")
@click.argument("name_or_path")
@json_option
def show(name_or_path: str, as_json: bool) -> None:
    """Show every number of a profile (by shipped name or TOML path) with its source."""
    p = load_profile(name_or_path)
    d = dataclasses.asdict(p)

    def human() -> None:
        click.echo(f"{p.name}: {p.description}")
        for section, values in d.items():
            if isinstance(values, dict):
                click.echo(f"[{section}]")
                for k, v in values.items():
                    click.echo(f"  {k} = {'unknown' if v is None else v}")

    emit(d, as_json, human)


def _render(table: Table) -> str:
    import io

    from rich.console import Console

    c = Console(width=160, record=True, file=io.StringIO())
    c.print(table)
    return c.export_text()
