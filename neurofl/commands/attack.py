"""`neurofl attack`: run one attack recipe on one model's shared updates and score it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from neurofl.commands.common import emit, json_option, progress, stderr


@click.command()
@click.option("--recipe", "--attack", "recipe", default="inverting_gradients", show_default=True,
              help="Attack recipe: a shipped name (attacks/NAME.toml) or a TOML path.")
@click.option("--model", type=click.Choice(["snn", "ann"]), default="snn", show_default=True)
@click.option("--profile", default="loihi2", show_default=True, help="Hardware profile name or TOML path.")
@click.option("--dataset", default="digits", show_default=True, help="Dataset name (see `neurofl datasets list`).")
@click.option("--victims", default=8, show_default=True, type=click.IntRange(1), help="Client updates attacked.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Private samples per update (FedSGD).")
@click.option("--local-steps", default=1, show_default=True, type=click.IntRange(1),
              help="Local SGD steps per update: 1 shares a FedSGD gradient, more a FedAvg weight delta.")
@click.option("--local-lr", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Learning rate of the local SGD steps (with --local-steps > 1).")
@click.option("--arch", type=click.Choice(["auto", "mlp", "conv"]), default="auto", show_default=True,
              help="Model topology: auto = mlp for 8x8 images, conv otherwise.")
@click.option("--iterations", default=None, type=click.IntRange(1), help="Override the recipe's iterations.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--updates", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Attack updates captured by `neurofl fl` in this folder instead of fresh FedSGD ones.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=lambda: os.environ.get("NEUROFL_DATA"),
              help="Folder with on-disk datasets [env NEUROFL_DATA].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write report.json, reconstructions.npz and reconstructions.png here; a finished run "
                   "with the same settings is reused.")
@json_option
def attack(
    recipe: str, model: str, profile: str, dataset: str, victims: int, batch_size: int, local_steps: int,
    local_lr: float, arch: str, iterations: int | None, seed: int, updates: Path | None, data_dir: Path | None,
    out: Path | None, as_json: bool,
) -> None:
    """Invert shared updates with an attack recipe; print PSNR, SSIM, ASR and label accuracy."""
    from neurofl.attacks.outputs import load_finished, save_run
    from neurofl.attacks.recipe import load_recipe
    from neurofl.attacks.suite import AttackConfig, run_attack

    cfg = AttackConfig(
        recipe=recipe, model=model, profile=profile, dataset=dataset, victims=victims, batch_size=batch_size,
        local_steps=local_steps, local_lr=local_lr, arch=arch, seed=seed, iterations=iterations, updates=updates,
        data_dir=Path(data_dir) if data_dir else None,
    )
    report = load_finished(out, cfg) if out is not None else None
    if report is None:
        its = iterations or load_recipe(recipe).iterations
        with progress() as bar:
            task = bar.add_task(f"attack {model}@{profile}", total=its)
            report, rec, truth = run_attack(cfg, on_step=lambda i: bar.update(task, completed=i % its or its))
        if out is not None:
            save_run(out, cfg, report, rec, truth)

    def human() -> None:
        r = report["results"][0]
        stderr.print(f"[bold]{report['attack']}[/] on {r['model']}@{r['profile']}, {r['victims']} victims")
        click.echo(json.dumps(r, indent=2, default=str))

    emit(report, as_json, human)
