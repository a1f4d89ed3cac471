"""`neurofl train`: train a model under a hardware profile and save a checkpoint, resumably."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from neurofl.commands.common import (
    budget_option,
    check_out_file,
    data_dir_option,
    device_option,
    emit,
    json_option,
    progress,
    seed_option,
    splits_for,
    stderr,
)

MAX_EPOCHS = 100_000


@click.command()
@click.option("--dataset", default="digits", show_default=True)
@click.option("--model", "kind", type=click.Choice(["snn", "ann"]), default="snn", show_default=True)
@click.option("--profile", "profile_name", default="loihi2", show_default=True, help="Profile name or TOML path.")
@click.option(
    "--arch",
    "arch_name",
    type=click.Choice(["auto", "mlp", "conv"]),
    default="auto",
    show_default=True,
    help="auto: mlp for 8x8 images (digits), conv otherwise; NetX export takes mlp and conv SNNs.",
)
@click.option("--epochs", type=int, default=15, show_default=True)
@seed_option()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Checkpoint file to write (.pt); OUT.resume holds per-epoch progress, so rerunning resumes.",
)
@data_dir_option
@device_option
@budget_option(
    "Memory training may allocate (4G, 512M): a training step that does not fit is refused before the first "
    "epoch, naming what to lower; the test split is evaluated in batches that fit [80% of the memory available "
    "at start] (neurofl/runs/memory.py)."
)
@json_option
def train(dataset, kind, profile_name, arch_name, epochs, seed, out, data_dir, device, as_json,
          max_memory=None) -> None:  # fmt: skip
    """Train a model under a hardware profile (quantization-aware for SNNs) and save a checkpoint.

    Progress is saved after every epoch to OUT.resume; an interrupted run (Ctrl-C, SIGKILL) rerun
    with the same options continues from its last finished epoch to the same final model.
    """
    from neurofl.errors import UserError
    from neurofl.models import architecture_for
    from neurofl.models.checkpoint import check_trainable, save_checkpoint
    from neurofl.profiles import load_profile
    from neurofl.runs.device import device_kind, resolve_device
    from neurofl.runs.memory import set_budget
    from neurofl.train import train_model

    if not 1 <= epochs <= MAX_EPOCHS:
        raise UserError(f"--epochs must be in 1..{MAX_EPOCHS}, got {epochs}")
    limit = set_budget(max_memory)
    dev = resolve_device(device)
    check_out_file(out, companions=(".resume",))
    profile = load_profile(profile_name)
    splits = splits_for(dataset, data_dir, seed)
    chip_notes: list[str] = []
    if kind == "snn" and profile.chip is not None:  # a chip network (Xylo, Speck, ...): pick one that fits, or refuse
        from neurofl.models.chips.xylo_net import chip_architecture

        splits, arch, chip_notes = chip_architecture(splits, profile, arch_name)
    else:
        arch = architecture_for(splits.clients.input_shape, splits.clients.classes, arch_name)
    # what the checkpoint's loader would refuse is refused before the first epoch
    check_trainable(arch, splits.clients, splits.test, f"dataset '{dataset}' under profile '{profile.name}'")
    for note in chip_notes:
        stderr.print(f"{profile.name}: {note}")
    resume = out.with_name(out.name + ".resume")
    with progress() as bar:
        task = bar.add_task(f"train {kind}@{profile.name}", total=epochs)

        def on_epoch(s) -> None:
            bar.update(
                task,
                advance=1,
                description=f"train {kind}@{profile.name} loss {s.loss:.3f} "
                f"train {s.train_accuracy:.1%} test {s.test_accuracy:.1%}",
            )

        result = train_model(kind, arch, profile, splits.clients, splits.test, epochs, seed, on_epoch, resume=resume,
                             device=dev, max_memory=limit)  # fmt: skip
    result.model.cpu()  # the checkpoint holds CPU tensors
    if result.resumed_from:
        stderr.print(f"resumed from {resume} after epoch {result.resumed_from}")
    history = [dataclasses.asdict(h) for h in result.history]
    header = save_checkpoint(
        out,
        result.model,
        kind,
        arch,
        profile,
        dataset,
        result.accuracy,
        extra={
            "seed": seed,
            "epochs": epochs,
            "split": "train on clients, test on test",
            "history": history,
            **({"chip_fit": chip_notes} if chip_notes else {}),
        },
    )
    resume.unlink(missing_ok=True)  # after the checkpoint is in place: a kill in between resumes to the same file
    summary = {
        "out": str(out),
        "kind": kind,
        "profile": header["profile"]["name"],  # by content: a shipped name holding other numbers is NAME~DIGEST
        "dataset": dataset,
        "test_accuracy": result.accuracy,
        "history": history,
        "resumed_from": result.resumed_from,
        "device": device_kind(dev),
        "versions": header["versions"],
        **({"chip_fit": chip_notes} if chip_notes else {}),
    }
    emit(
        summary,
        as_json,
        lambda: click.echo(f"{kind}@{summary['profile']} on {dataset}: test accuracy {result.accuracy:.1%} -> {out}"),
    )
