"""`neurofl report RESULTS --out docs/results.md [--readme README.md]`: the results page from the JSON files."""

from __future__ import annotations

from pathlib import Path

import click

from neurofl.errors import UserError


@click.command()
@click.argument("results", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("docs/results.md"),
              show_default=True, help="The page to write.")
@click.option("--readme", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also render the findings table into this README's generated block.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file differs from what would be written.")
def report(results: Path, out: Path, readme: Path | None, check: bool) -> None:
    """Render docs/results.md (and the README's findings) from the JSON files under RESULTS."""
    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.results_page import render, with_findings

    if not results.is_dir():
        raise UserError(f"{results}: not a folder of results")
    if not any(results.glob("*/study.json")):
        raise UserError(f"{results}: holds no study (*/study.json)")
    pages = {out: render(results)}
    if readme is not None:
        if not readme.is_file():
            raise UserError(f"{readme}: no such file")
        try:
            pages[readme] = with_findings(readme.read_text(), results)
        except ValueError as e:
            raise UserError(f"{readme}: {e}") from None
    stale = [p for p, text in pages.items() if not p.is_file() or p.read_text() != text]
    if check:
        if stale:
            click.echo(f"out of date: {', '.join(map(str, stale))} (run neurofl report {results} ...)", err=True)
            raise SystemExit(1)
        return
    for path, text in pages.items():
        atomic_write_bytes(path, text.encode())
    click.echo(f"wrote {', '.join(map(str, pages))}")
