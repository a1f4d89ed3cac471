"""`neurofl study`: the study behind the verdict, cell x row x attack as tasks, here or on Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from neurofl.commands.common import device_option, iterations_option, max_memory_option, seed_option, stderr


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              default=lambda: os.environ.get("NEUROFL_DATA"), help="Folder with on-disk datasets [env NEUROFL_DATA].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/study"), show_default=True,
              help="Study folder: study.json/.md/.png and one evaluation per cell; rerun with the same --out to "
                   "resume.")
@click.option("--profiles", default="loihi2,loihi1", show_default=True, help="Chip profiles beside float32.")
@click.option("--datasets", default="digits,fashion-mnist,faces,dvs-digits", show_default=True,
              help="Comma-separated datasets (those not available are listed as skipped).")
@click.option("--batches", default="1,4,16", show_default=True, help="Comma-separated batch sizes.")
@click.option("--attack", default="suite_study", show_default=True,
              help="Attack suite or recipe: a shipped name or a TOML path.")
@click.option("--victims", type=click.IntRange(1, 100_000), default=16, show_default=True,
              help="Victims per cell (at most as many as the data allows).")
@click.option("--clients", type=click.IntRange(1, 100_000), default=8, show_default=True,
              help="Clients in the round (IID split).")
@seed_option()
@iterations_option
@click.option("--train-epochs", type=click.IntRange(0, 100_000), default=5, show_default=True,
              help="Epochs to train each row's model for its test accuracy (0 skips).")
@click.option("--min-victims", type=click.IntRange(1), default=4, show_default=True,
              help="Skip a (dataset, batch) cell where fewer victims fit.")
@device_option
@max_memory_option
@click.option("--workers", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="1: tasks one after another in this process (no Ray); N: a private local Ray instance of N CPUs.")
@click.option("--ablate", "ablate", multiple=True, metavar="KEY=V1,V2,...",
              help="Repeatable: one more SNN row per value beside each chip profile's, only KEY changed: time_steps, "
                   "encoding (direct|rate|regular|events), surrogate_width, surrogate_shape "
                   "(laplace|fast_sigmoid|triangle|gaussian), leak (on|off), reset (zero|subtract), payload "
                   "(binary|graded), upload (float32|intN); per-axis tables and plots in study.md (docs/study.md).")
@click.option("--round", "round_", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Attack the global model of this round: the rounds before it train with FedAvg on the local engine "
                   "(fully connected models).")
@click.option("--local-steps", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Each update: one local epoch over its batch in this many SGD steps of equal minibatches (it "
                   "divides each batch size; 1: the FedSGD gradient). The attacks unroll the steps.")
@click.option("--ray-address", default=None,
              help="Run the tasks on a running Ray cluster (HEAD:PORT, auto) instead; its nodes must see --out "
                   "and --data-dir at the same paths; --workers is then not used (docs/study.md).")
def study(data_dir: Path | None, out: Path, profiles: str, datasets: str, batches: str, attack: str, victims: int,
          clients: int, seed: int, iterations: int | None, train_epochs: int, min_victims: int, device: str,
          workers: int, ray_address: str | None, ablate: tuple[str, ...], round_: int = 1, local_steps: int = 1,
          max_memory: int | None = None) -> None:  # fmt: skip
    """Every available dataset x batch size: ANN vs SNN leakage against the strongest attacks, one verdict."""
    from neurofl.commands.fl import probe_ray_address
    from neurofl.runs.memory import set_budget
    from neurofl.runs.runfolder import check_out_dir
    from neurofl.study import StudyConfig, run_study

    if ray_address is not None:
        probe_ray_address(ray_address)
    check_out_dir(out)
    if ray_address is None:
        set_budget(max_memory, workers)  # each of N local tasks gets 1/N
    elif max_memory is not None:
        set_budget(max_memory)  # per task on the cluster; unset, each task takes its own node's default
    cfg = StudyConfig(out=out, data_dir=Path(data_dir) if data_dir else None, profiles=profiles, datasets=datasets,
                      batches=batches, attack=attack, victims=victims, clients=clients, seed=seed,
                      iterations=iterations, train_epochs=train_epochs, min_victims=min_victims, device=device,
                      workers=workers, ray_address=ray_address, ablate=tuple(ablate), round=round_,
                      local_steps=local_steps)  # fmt: skip
    result = run_study(cfg, lambda text: stderr.print(text, markup=False, highlight=False))
    stderr.print(f"wrote {out / 'study.json'}, {out / 'study.md'} and {out / 'study.png'}", markup=False)
    if result.study.get("ablations"):  # the per-axis tables and verdicts (plots: OUT/ablation_<key>.png)
        from neurofl.study.ablations import ablation_markdown

        click.echo("\n".join(ablation_markdown(result.study["ablations"])))
    if result.failed:
        n = len(result.failed)
        click.echo(f"error: {n} task{'s' if n > 1 else ''} failed (study.json 'failed'); first: "
                   f"{result.failed[0]['task']}: {result.failed[0]['error']}", err=True)  # fmt: skip
        sys.exit(1)
