"""`neurofl attack`: run one attack recipe (or suite) on one model's shared updates and score it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from neurofl.commands.common import (
    FiniteFloat,
    attack_progress,
    check_not_input,
    device_option,
    emit,
    iterations_option,
    json_option,
    local_steps_option,
    max_memory_option,
    minibatch_option,
    progress,
    seed_option,
    stderr,
)


@click.command()
@click.option("--recipe", "--attack", "recipe", default="suite", show_default=True,
              help="Attack recipe or suite: a shipped name (attacks/NAME.toml) or a TOML path.")
@click.option("--model", default="snn", show_default=True,
              help="snn or ann (built from --seed), or a neurofl checkpoint (.pt, e.g. from `neurofl import`) "
                   "attacked as it is.")
@click.option("--profile", default=None,
              help="Hardware profile name or TOML path [loihi2; with --model FILE: the checkpoint's].")
@click.option("--dataset", default=None,
              help="Dataset name (see `neurofl datasets list`) [digits; with --model FILE: the checkpoint's].")
@click.option("--victims", default=8, show_default=True, type=click.IntRange(1, 100_000),
              help="Client updates attacked.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="Private samples per update (FedSGD).")
@click.option("--clients", default=8, show_default=True, type=click.IntRange(1, 100_000),
              help="Clients whose IID shards the victims are drawn from (as evaluate does).")
@local_steps_option
@click.option("--local-lr", default=0.1, show_default=True, type=FiniteFloat(min=0, min_open=True, max=1e3),
              help="Learning rate of the local SGD steps (with --local-steps > 1).")
@minibatch_option
@click.option("--arch", type=click.Choice(["auto", "mlp", "conv"]), default="auto", show_default=True,
              help="Model topology: auto = mlp for 8x8 images, conv otherwise.")
@iterations_option
@seed_option()
@click.option("--updates", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Attack updates captured by `neurofl fl` in this folder instead of fresh FedSGD ones.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=lambda: os.environ.get("NEUROFL_DATA"),
              help="Folder with on-disk datasets [env NEUROFL_DATA].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write report.json, reconstructions.npz and reconstructions.png here; a rerun with the same "
                   "settings resumes (or reuses the finished run).")
@device_option
@max_memory_option
@json_option
def attack(
    recipe: str, model: str, profile: str | None, dataset: str | None, victims: int, batch_size: int, clients: int,
    local_steps: int, local_lr: float, minibatch: int | None, arch: str, iterations: int | None, seed: int,
    updates: Path | None,
    data_dir: Path | None, out: Path | None, device: str, as_json: bool,
    max_memory: int | None = None,
) -> None:
    """Invert shared updates with an attack recipe or suite; print ASR, PSNR, SSIM and label accuracy."""
    from neurofl.models.model_file import split_model_option
    from neurofl.pipelines.attack import AttackConfig, run_attack
    from neurofl.runs.memory import set_budget

    set_budget(max_memory)

    kind, checkpoint = split_model_option(model)
    check_not_input(out, {"--model": checkpoint, "--updates": updates})
    cfg = AttackConfig(
        recipe=recipe, model=kind or "snn", profile=profile, dataset=dataset, victims=victims, batch_size=batch_size,
        clients=clients, local_steps=local_steps, local_lr=local_lr, minibatch=minibatch, arch=arch, seed=seed,
        iterations=iterations,
        updates=updates, data_dir=Path(data_dir) if data_dir else None, checkpoint=checkpoint, device=device,
    )
    with progress() as bar:
        report = run_attack(cfg, out, attack_progress(bar))

    def human() -> None:
        r = report["results"][0]
        stderr.print(f"[bold]{report['attack']}[/] on {r['model']}@{r['profile']}, {r['victims']} victims")
        click.echo(json.dumps(r, indent=2, default=str))

    emit(report, as_json, human)
