"""`neurofl evaluate`: leakage of ANN vs SNN updates under hardware profiles."""

from __future__ import annotations

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
)


@click.command()
@click.option(
    "--profile",
    "profile",
    default=None,
    help="Hardware profile name or TOML path; a comma-separated list compares several; 'all': every "
    "shipped chip whose network can be built for the dataset "
    "[loihi2; with an SNN --model: the checkpoint's, and no other].",
)
@click.option("--dataset", default=None,
              help="Dataset name (see `neurofl datasets list`) [digits; with --model: the checkpoint's].")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="A neurofl checkpoint (.pt, e.g. from `neurofl import`): the rows of its kind use its weights as "
                   "they are; the other rows are built with its topology (docs/nir.md).")
@click.option("--attack", default="suite", show_default=True,
              help="Attack suite or recipe: a shipped name (attacks/NAME.toml) or a TOML path.")
@click.option(
    "--clients", default=8, show_default=True, type=click.IntRange(1, 100_000), help="Clients in the round (IID split)."
)
@click.option("--victims", default=32, show_default=True, type=click.IntRange(1, 100_000),
              help="Client updates attacked.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="Private samples per update (FedSGD).")
@click.option("--arch", type=click.Choice(["auto", "mlp", "conv"]), default="auto", show_default=True,
              help="Topology: mlp (digits), conv (LeNet-style), auto picks by input size.")
@click.option("--train-epochs", default=15, show_default=True, type=click.IntRange(0, 100_000),
              help="Epochs to train a copy of each built row's model for its test accuracy (0 skips); "
                   "a --model row reports the file's model's own accuracy, untrained.")
@click.option("--round", "round_", default=1, show_default=True, type=click.IntRange(1, 100_000),
              help="Attack the updates of this federated round (earlier rounds: FedAvg with the local engine; "
                   "with --model, of the built rows only).")
@click.option("--fl-lr", default=None, type=FiniteFloat(min=0, min_open=True, max=1e3),
              help="FedAvg client learning rate, in the rounds before --round and in the attacked update's local "
                   "steps [default: 0.5 ANN, 0.03 SNN].")
@local_steps_option
@minibatch_option
@click.option("--encoding", type=click.Choice(["profile", "direct", "rate"]), default="profile", show_default=True,
              help="SNN input encoding of images: the profile's, direct current each step, or Bernoulli rate code.")
@iterations_option
@seed_option()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("NEUROFL_DATA"),
    help="Folder with on-disk datasets [env NEUROFL_DATA].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/evaluate"),
    show_default=True,
    help="Run folder; rerun with the same --out to resume.",
)
@click.option("--workers", default=None, type=click.IntRange(1, 1024),
              help="Rows computed side by side in forked processes [one per row, at most one per CPU].")
@click.option("--threat-model", type=click.Choice(["honest", "malicious"]), default="honest", show_default=True,
              help="honest: the server attacks the updates of the global model it sent; malicious: it ships an "
                   "imprint module (attacks/imprint.toml, Robbing the Fed) and the run is reported apart.")
@device_option
@max_memory_option
@json_option
def evaluate(
    profile: str | None,
    dataset: str | None,
    model: Path | None,
    attack: str,
    clients: int,
    victims: int,
    batch_size: int,
    arch: str,
    train_epochs: int,
    round_: int,
    fl_lr: float | None,
    local_steps: int,
    minibatch: int | None,
    encoding: str,
    iterations: int | None,
    seed: int,
    data_dir: Path | None,
    out: Path,
    workers: int | None,
    threat_model: str,
    device: str,
    as_json: bool,
    max_memory: int | None = None,
) -> None:
    """One federated round; the server inverts each victim's (quantized) update; ANN vs SNN leakage."""
    from neurofl.pipelines.evaluate import EvaluateConfig, run_evaluate
    from neurofl.report import markdown
    from neurofl.runs.memory import set_budget

    set_budget(max_memory)  # forked row workers share it (neurofl/runs/rowpool.py)

    check_not_input(out, {"--model": model})
    profiles = tuple(p.strip() for p in (profile or "").split(",") if p.strip())
    if profile is not None and not profiles:
        from neurofl.errors import UserError

        raise UserError(f"--profile {profile!r}: names no profile (a name, a TOML path, a list or 'all')")
    cfg = EvaluateConfig(
        profiles=profiles,
        dataset=dataset,
        attack=attack,
        clients=clients,
        victims=victims,
        batch_size=batch_size,
        seed=seed,
        out=out,
        data_dir=Path(data_dir) if data_dir else None,
        iterations=iterations,
        arch=arch,
        train_epochs=train_epochs,
        round=round_,
        fl_lr=fl_lr,
        local_steps=local_steps,
        minibatch=minibatch,
        encoding=encoding,
        model=model,
        workers=workers,
        device=device,
    )
    if threat_model == "malicious":
        from neurofl.pipelines.malicious import markdown as malicious_markdown
        from neurofl.pipelines.malicious import run_malicious

        report = run_malicious(cfg)
        wrote = f"wrote {out / 'report.json'}, {out / 'report.md'}"
        emit(report, as_json, lambda: click.echo(malicious_markdown(report) + wrote))
        return
    with progress() as bar:
        report = run_evaluate(cfg, attack_progress(bar))

    def human() -> None:
        click.echo(markdown(report))
        click.echo(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'reconstructions.png'}")

    emit(report, as_json, human)
