"""`neurofl import MODEL.nir`: bring a spiking network from snnTorch, Norse, ... (via NIR) into neurofl."""

from __future__ import annotations

from pathlib import Path

import click

from neurofl.commands.common import FiniteFloat, check_not_input, check_out_file, emit, input_checks, json_option


@click.command(name="import")
@click.argument("nir_file", type=click.Path(path_type=Path))
@click.option("--profile", "profile_name", default="loihi2", show_default=True, help="Profile name or TOML path.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="neurofl checkpoint to write (.pt).")
@click.option(
    "--dt",
    type=FiniteFloat(),  # the range is checked below, with its own message
    required=True,
    help="Seconds per time step the file's time constants assume (NIR files do not record it): "
    "snnTorch writes with 1e-4; Norse 1.1.0 files need the square of its step (1e-6 for its 1e-3).",
)
@click.option(
    "--dataset",
    default="digits",
    show_default=True,
    help="Dataset the model takes (sets the input shape and class count), or 'none' for a flat input.",
)
@click.option(
    "--rescale/--no-rescale",
    default=True,
    show_default=True,
    help="Scale each layer's weights and threshold together (spikes unchanged) to use the weight grid best.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder of on-disk datasets.")
@json_option
def import_(nir_file, profile_name, out, dt, dataset, rescale, data_dir, as_json) -> None:
    """Read a NIR graph, map it onto a profile's grids (one line per layer says what was rounded),
    and save it as a neurofl checkpoint that attack, fl, export and verify take."""
    from neurofl.errors import UserError
    from neurofl.models.checkpoint import save_checkpoint
    from neurofl.nir_io.read import read_nir
    from neurofl.nir_io.to_model import check_profile, to_model
    from neurofl.profiles import load_profile

    if not 0 < dt < 1e6:
        raise UserError(f"--dt must be a positive number of seconds, got {dt}")
    check_out_file(out)
    check_not_input(out, {"NIR file": nir_file})
    profile = load_profile(profile_name)
    check_profile(profile)
    with input_checks():  # numpy's warnings on a hostile value never precede the one refusal line
        graph = read_nir(nir_file)
        input_shape = None
        if dataset != "none":
            from neurofl.data import load_dataset

            data = load_dataset(dataset, data_dir)
            input_shape = tuple(data.input_shape)
        imported = to_model(graph, profile, dt, input_shape, rescale)
    if dataset != "none" and imported.arch.classes != data.classes:
        raise UserError(
            f"{nir_file}: the graph has {imported.arch.classes} outputs, dataset '{dataset}' has {data.classes} "
            "classes (pass --dataset none to import it anyway)"
        )
    source = {"nir_file": str(nir_file), "nir_version": graph.version, "dt": dt, "notes": list(imported.notes)}
    save_checkpoint(out, imported.model, "snn", imported.arch, profile, dataset, None,
                    extra={"seed": 0, "imported_from": source})  # fmt: skip
    result = {"out": str(out), "profile": profile.name, "widths": list(imported.arch.widths), **source}

    def human() -> None:
        for note in imported.notes:
            click.echo(note)
        click.echo(f"wrote {out} ({'-'.join(map(str, imported.arch.widths))} SNN, profile '{profile.name}')")

    emit(result, as_json, human)
