"""`neurofl export | verify`: export a trained SNN to NetX (or NIR), verify it in Lava fixed point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import torch

from neurofl.commands.common import (
    FiniteFloat,
    budget_option,
    check_not_input,
    check_out_file,
    data_dir_option,
    emit,
    json_option,
    seed_option,
    splits_for,
    stderr,
)
from neurofl.io.limits import MAX_TIME_STEPS  # a constants module: --help stays fast

MAX_SAMPLES = 1_000_000


def _check_profile(requested: str | None, actual, what: str) -> None:
    from neurofl.errors import UserError
    from neurofl.profiles import load_profile

    if requested is None:
        return
    p = load_profile(requested)
    if p != actual:
        raise UserError(f"{what} was built for profile '{actual.name}', not the requested profile '{p.name}'")


def _print_resources(res) -> None:
    click.echo(f"resources under '{res.profile}' ({res.samples} inputs x {res.time_steps} steps):")
    for f, label in (
        (res.cores_used, "cores used"),
        (res.synapse_memory, "synaptic memory"),
        (res.synops_per_inference, "synaptic ops / inference"),
        (res.neuron_updates_per_inference, "neuron updates / inference"),
        (res.energy_per_inference, "energy / inference"),
    ):
        if f is not None:
            click.echo(f"  {label:27s} {f.value:12.4g} {f.unit:8s} [{f.source}]")
    for p in res.problems:
        click.echo(f"  problem: {p}")


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write (.net for NetX, .nir).")
@click.option("--profile", "profile_name", default=None, help="Refuse unless the model was trained under this profile.")
@click.option("--format", "fmt", type=click.Choice(["netx", "nir"]), default="netx", show_default=True,
              help="netx: NetX HDF5 for Lava/Loihi; nir: a NIR graph for snnTorch, Norse, ... (docs/nir.md).")
@click.option("--dt", type=FiniteFloat(), default=1e-4, show_default=True,
              help="--format nir: seconds per step written into the time constants (snnTorch reads 1e-4).")
@click.option("--dataset", default=None,
              help="Dataset of a model imported with --dataset none (its calibration inputs) [the header's].")
@data_dir_option
@json_option
def export(checkpoint, out, profile_name, fmt, dt, data_dir, as_json, dataset=None) -> None:
    """Check a trained SNN fits its chip, then write it as a NetX HDF5 network (or a NIR graph)."""
    from neurofl.deploy.export import export_netx
    from neurofl.errors import UserError
    from neurofl.models.checkpoint import header_seed, load_checkpoint

    check_out_file(out)
    check_not_input(out, {"checkpoint": checkpoint})
    ck = load_checkpoint(checkpoint, kind=None)
    if ck.kind != "snn":
        raise UserError(f"{checkpoint}: holds an '{ck.kind}' model; only SNNs can be exported to {fmt}")
    if ck.profile.neuron.decay != "multiplier":  # a chip network: neither NetX nor NIR expresses its arithmetic
        what, hint = "a chip network", "no bit-accurate simulator is wired for this chip"
        if ck.profile.neuron.decay == "shift":
            what = "a Xylo network"
            hint = f"check it in xylosim with: neurofl verify {checkpoint} --profile {ck.profile.name}"
        raise UserError(f"{checkpoint}: {what} (profile '{ck.profile.name}') is not exported to {fmt}; {hint}")
    _check_profile(profile_name, ck.profile, str(checkpoint))
    if fmt == "nir":
        from neurofl.nir_io.from_model import write_nir

        try:
            n = write_nir(ck.model, out, dt)
        except UserError as e:
            raise UserError(f"{checkpoint}: {e}") from None
        emit({"out": str(out), "profile": ck.profile.name, "format": "nir", "layers": n, "dt": dt}, as_json,
             lambda: click.echo(f"wrote {out} (NIR, {n} layers, dt {dt:g} s; profile '{ck.profile.name}')"))
        return
    seed = header_seed(ck.header, f"{checkpoint} header")
    if ck.dataset in ("none", "?"):  # neurofl.models.model_file.NO_DATASET: `neurofl import --dataset none`
        if dataset is None:
            raise UserError(
                f"{checkpoint}: names no dataset (imported with --dataset none), and the NetX export calibrates and "
                "checks the model on its dataset's inputs; pass --dataset NAME, or export --format nir"
            )
        ck = dataclasses.replace(ck, dataset=dataset)
    elif dataset is not None and dataset != ck.dataset:
        raise UserError(f"--dataset {dataset}: {checkpoint} holds a model of dataset '{ck.dataset}' (omit --dataset)")
    try:
        calib = torch.from_numpy(splits_for(ck.dataset, data_dir, seed).clients.x)
    except UserError as e:  # the dataset the header names
        raise UserError(f"{checkpoint}: header dataset '{ck.dataset}': {e}"[:400]) from None
    flat = type(ck.arch).__name__ == "Architecture" and calib[0].numel() == ck.arch.input_size
    if flat and tuple(calib.shape[1:]) != tuple(ck.arch.input_shape):  # imported with a flat input of that width
        from neurofl.models import build_model

        arch = dataclasses.replace(ck.arch, input_shape=tuple(calib.shape[1:]))
        model = build_model("snn", arch, ck.profile, seed=0)
        model.load_state_dict(ck.model.state_dict())
        ck = dataclasses.replace(ck, arch=arch, model=model.eval())
    if tuple(calib.shape[1:]) != tuple(ck.arch.input_shape):
        raise UserError(
            f"{checkpoint}: its dataset '{ck.dataset}' has inputs of shape {tuple(calib.shape[1:])}, the "
            f"architecture in its header expects {tuple(ck.arch.input_shape)}"
        )
    meta = {"dataset": ck.dataset, "seed": seed, "slayer_accuracy": ck.accuracy, "checkpoint": str(checkpoint)}
    try:
        fit = export_netx(ck.model, out, calib, meta, seed)
    except UserError as e:  # the model does not fit its chip
        raise UserError(f"{checkpoint}: {e}") from None
    result = {"out": str(out), "profile": ck.profile.name, "fit": dataclasses.asdict(fit)}

    def human() -> None:
        click.echo(f"wrote {out} (profile '{ck.profile.name}')")
        click.echo(
            f"  weight mantissas in [{fit.weight_min}, {fit.weight_max}] (8-bit grid), max delay {fit.max_delay}"
        )
        click.echo(
            f"  max |current| {fit.max_abs_current}, max |voltage| {fit.max_abs_voltage} "
            f"(24-bit limit {fit.state_limit})"
        )
        _print_resources(fit.resources)

    emit(result, as_json, human)


@click.command()
@click.argument("netx_file", type=click.Path(path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@click.option("--samples", type=click.IntRange(1, MAX_SAMPLES), default=None,
              help="Test samples to run [default: 100; 4 for a third-party file].")  # fmt: skip
@click.option("--profile", "profile_name", default=None, help="Refuse unless the network was built for this profile.")
@click.option("--input", "input_name", default=None,
              help="Third-party NetX file: 'random' (default) or a dataset of the file's input size.")  # fmt: skip
@click.option("--steps", type=click.IntRange(1, MAX_TIME_STEPS), default=None,
              help="Third-party NetX file: steps per sample [default: the file's tSample, else 16].")  # fmt: skip
@seed_option(default=None, help="Split / rate-code seed (default: the one in the file).")
@data_dir_option
@budget_option(
    "Memory verification may allocate (4G, 512M): the samples run through Lava in chunks that fit (the report "
    "is the same), or the run is refused naming what to lower [80% of the memory available at start] "
    "(neurofl/runs/memory.py)."
)
@json_option
def verify(netx_file, dataset, samples, profile_name, input_name, steps, seed, data_dir, as_json,
           max_memory=None) -> None:  # fmt: skip
    """Run a NetX network in Lava fixed point and compare it with SLAYER, spike by spike.

    A NetX file without neurofl's header (a third-party network, e.g. lava-dl's test networks) is
    compared layer by layer with a reference built from the file itself (docs/deploy.md).
    A checkpoint (.pt) of a Xylo-profile model instead runs in xylosim (pip install 'neurofl[xylo]')
    and is compared with neurofl's torch Xylo network, event count by event count.
    """
    from neurofl.deploy.third_party.reader import is_foreign
    from neurofl.errors import UserError
    from neurofl.runs.memory import set_budget

    limit = set_budget(max_memory)
    if netx_file.suffix != ".pt" and is_foreign(netx_file):
        _verify_foreign(netx_file, samples or 4, input_name or "random", steps, seed or 0, data_dir, as_json)
        return
    if input_name is not None or steps is not None:
        raise UserError(f"{netx_file}: --input and --steps are for third-party NetX files; use --dataset")
    samples = 100 if samples is None else samples
    if netx_file.suffix == ".pt":  # a Xylo checkpoint: bit-accurate run in xylosim (deploy/xylo.py)
        from neurofl.deploy.xylo import verify_checkpoint

        xylo_result, xylo_lines = verify_checkpoint(netx_file, dataset, samples, profile_name, seed, data_dir)
        emit(xylo_result, as_json, lambda: click.echo("\n".join(xylo_lines)))
        return
    from neurofl.deploy.netx import read_netx
    from neurofl.deploy.parity import check_dataset, memory_chunk, reference_model, verify_netx
    from neurofl.deploy.resources import estimate_resources
    from neurofl.models.checkpoint import header_seed

    nf = read_netx(netx_file)
    _check_profile(profile_name, nf.profile, str(netx_file))
    seed = header_seed(nf.header, f"{netx_file} header") if seed is None else seed
    test = splits_for(dataset, data_dir, seed).test
    check_dataset(nf, test, samples)
    n = min(samples, len(test.y))
    chunk = memory_chunk(nf, n, limit)

    def notice() -> None:  # after every check, so a refused file prints only its error line
        runs = "" if chunk >= n else f" in Lava runs of {chunk} (--max-memory)"
        stderr.print(f"running {n} samples{runs} in Lava fixed point (Loihi2SimCfg, fixed_pt) ...")

    rep = verify_netx(nf, test, samples, seed, on_start=notice, chunk=chunk)
    res = estimate_resources(reference_model(nf), nf.profile, torch.from_numpy(test.x[: rep.samples]), seed)
    result = {
        "file": str(netx_file),
        "profile": nf.profile.name,
        "dataset": dataset,
        "parity": dataclasses.asdict(rep),
        "resources": res.as_dict(),
    }

    def human() -> None:
        click.echo(f"{netx_file} ({nf.profile.name}) on {rep.samples} '{dataset}' test samples:")
        click.echo(
            f"  spike agreement          {rep.spike_agreement:.4%} "
            f"({rep.mismatched_bins} of {rep.compared_bins} bins differ)"
        )
        if rep.spike_agreement_chip_grid is not None:
            click.echo(
                f"  vs chip-grid reference   {rep.spike_agreement_chip_grid:.4%} "
                "(SLAYER with graded input floored as Loihi does)"
            )
        click.echo(f"  classification agreement {rep.classification_agreement:.2%}")
        click.echo(f"  accuracy                 SLAYER {rep.slayer_accuracy:.2%}  Lava {rep.lava_accuracy:.2%}")
        click.echo(f"  time                     SLAYER {rep.slayer_seconds:.2f} s  Lava {rep.lava_seconds:.2f} s")
        _print_resources(res)

    emit(result, as_json, human)


def _verify_foreign(path: Path, samples: int, input_name: str, steps, seed: int, data_dir, as_json: bool) -> None:
    """``neurofl verify`` of a NetX file without neurofl's header (deploy/foreign*.py)."""
    import numpy as np

    from neurofl.deploy.third_party.parity import foreign_inputs, random_inputs, verify_foreign
    from neurofl.deploy.third_party.reader import read_foreign

    net = read_foreign(path)
    steps = steps or net.time_steps or 16
    if input_name == "random":
        x = random_inputs(net, samples, seed)
    else:
        test = splits_for(input_name, data_dir, seed).test
        x = np.asarray(test.x[:samples])
    foreign_inputs(net, x, steps, seed)  # refuses inputs that do not fit, before Lava starts
    stderr.print(f"running {x.shape[0]} samples x {steps} steps in Lava fixed point (Loihi2SimCfg, fixed_pt) ...")
    rep = verify_foreign(net, x, steps, seed, input_name)
    result = {"file": str(path), "third_party": True, "layers": net.describe(), "parity": dataclasses.asdict(rep)}

    def human() -> None:
        click.echo(
            f"{path} (third-party NetX: {net.describe()}) on {rep.samples} '{input_name}' inputs x {steps} steps:"
        )
        for r in rep.layers:
            what = f"/layer/{r.layer} {r.kind} ({r.neurons} neurons)"
            if r.compared:
                click.echo(
                    f"  {what:34s} spike agreement {r.agreement:.4%} ({r.mismatched_bins} of {r.bins} bins differ; "
                    f"spikes reference {r.reference_spikes}, Lava {r.lava_spikes})"
                )
            else:
                click.echo(f"  {what:34s} not read back from Lava (too large); reference spikes {r.reference_spikes}")
        click.echo(f"  output voltage agreement           {rep.output_voltage_agreement:.4%} "
                   f"(max |difference| {rep.output_voltage_max_abs_diff})")  # fmt: skip
        if rep.classification_agreement is not None:
            click.echo(f"  classification agreement           {rep.classification_agreement:.2%}")
        if not rep.states_within_24_bits:
            click.echo("  note: states beyond Lava's 24-bit registers (the reference does not wrap or clip)")
        click.echo(f"  time                               reference {rep.reference_seconds:.2f} s  "
                   f"Lava {rep.lava_seconds:.2f} s")  # fmt: skip

    emit(result, as_json, human)
