"""`neurofl privacy-utility`: privacy vs utility of each defense, ANN vs SNN, on federated digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from neurofl.commands.common import FiniteFloat, device_option, emit, json_option, seed_option, stderr
from neurofl.pipelines.privacy_utility import CONVERGING


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _epsilons(value: str) -> tuple[float, ...]:
    from neurofl.errors import UserError

    out = []
    for text in _list(value):
        try:
            eps = FiniteFloat(min=0, min_open=True).convert(text, None, None)
        except click.BadParameter:
            raise UserError(f"--epsilons: {text!r} is not a positive finite number") from None
        out.append(eps)
    return tuple(out)


def _overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as a table (each VALUE a TOML value)."""
    import tomli

    from neurofl.errors import UserError

    table: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE (a TOML value), e.g. --set local_steps=1")
        try:
            table.update(tomli.loads(pair.replace("=", " = ", 1)))
        except tomli.TOMLDecodeError as e:
            raise UserError(f"--set {pair!r}: not KEY=VALUE with a TOML value ({e})"[:300]) from None
    return table


@click.command("privacy-utility")
@click.option("--dp-grid", is_flag=True, help="DP at target epsilons on the converging schedule (--config).")
@click.option("--epsilons", default="1,4,8", show_default=True, help="--dp-grid: target epsilons ('' none).")
@click.option("--delta", type=FiniteFloat(min=0, max=1, min_open=True, max_open=True), default=1e-5,
              show_default=True, help="--dp-grid: delta.")  # fmt: skip
@click.option("--no-attack", is_flag=True, help="--dp-grid: accuracy and epsilon only.")
@click.option("--capture-clients", type=click.IntRange(1, 100_000), default=3, show_default=True,
              help="--dp-grid: clients captured and attacked.")  # fmt: skip
@click.option("--capture-round", type=click.IntRange(1, 1_000_000), default=1, show_default=True,
              help="--dp-grid: the round attacked (1: the highest leakage).")  # fmt: skip
@click.option("--models", default="ann,snn", show_default=True, help="--dp-grid: model kinds.")
@click.option("--extras", default="prune,secagg", show_default=True,
              help="--dp-grid: other defenses (prune; secagg = secagg4, secaggK: K clients summed; dplocal: "
                   "clients noise their own updates, at each epsilon; '' none).")  # fmt: skip
@click.option("--reference-profiles", default="",
              help="--dp-grid: profiles (e.g. float32,loihi1) that get an undefended row beside loihi2's.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=CONVERGING, show_default=True,
              help="--dp-grid: the FL schedule: a shipped one's name or a TOML file.")  # fmt: skip
@click.option("--work", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/privacy_utility_dp"),
              show_default=True, help="--dp-grid: run folders (each resumes).")  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="--dp-grid: replace a setting of --config (TOML value), e.g. --set local_steps=1.")
@click.option("--tag", default="", help="--dp-grid: suffix of the output files' names.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("results/privacy_utility"),
              show_default=True, help="Folder of privacy_utility*.{json,md,png}.")  # fmt: skip
@click.option("--rounds", type=click.IntRange(1, 1_000_000), default=20, show_default=True,
              help="Rounds (not --dp-grid: its --config has them).")
@click.option("--iterations", type=click.IntRange(1, 1_000_000), default=300, show_default=True,
              help="Gradient-matching iterations.")
@click.option("--attack", default="suite", show_default=True,
              help="Attack suite or recipe (a shipped name or a TOML path), scored on the evaluation core.")
@seed_option()
@device_option
@json_option
def privacy_utility(dp_grid: bool, epsilons: str, delta: float, no_attack: bool, capture_clients: int,
                    capture_round: int, models: str, extras: str, reference_profiles: str, config: Path, work: Path,
                    sets: tuple[str, ...], tag: str, out: Path, rounds: int, iterations: int, attack: str, seed: int,
                    device: str, as_json: bool) -> None:  # fmt: skip
    """Privacy vs utility of each defense: train federatedly (digits), attack the captured uploads on
    the evaluation core, and report final accuracy beside leakage, ANN vs SNN.

    Without --dp-grid: FedSGD at batch 1, one strength per defense (privacy_utility.*). With
    --dp-grid: DP-SGD and DP-FedAvg at target epsilons and the --extras on a converging schedule,
    loihi2 (int8 uploads) unless --reference-profiles (privacy_utility_dp{--tag}.*). Runs and attacks
    resume under --work (--dp-grid) or --out/runs.
    """
    import json

    from neurofl.errors import UserError
    from neurofl.pipelines.privacy_utility import PrivacyUtilityConfig, run_privacy_utility
    from neurofl.runs.runfolder import check_out_dir

    if not dp_grid:
        grid_only = {"--no-attack": no_attack, "--set": bool(sets), "--tag": bool(tag)}
        given = [flag for flag, on in grid_only.items() if on]
        if given:
            raise UserError(f"{given[0]} applies to --dp-grid only")
    if "/" in tag or "\\" in tag or tag in (".", ".."):
        raise UserError(f"--tag {tag!r}: a suffix of file names, no path")
    check_out_dir(out)
    cfg = PrivacyUtilityConfig(
        out=out, dp_grid=dp_grid, epsilons=_epsilons(epsilons), delta=delta, attack=None if no_attack else attack,
        iterations=iterations, capture_round=capture_round, capture_clients=capture_clients,
        models=_list(models), extras=_list(extras),
        reference_profiles=_list(reference_profiles), config=config,
        overrides=_overrides(sets), work=work, tag=tag, rounds=rounds, seed=seed, device=device,
    )  # fmt: skip

    def line(row: dict[str, Any]) -> None:
        shown = {k: v for k, v in row.items() if k not in ("per_attack", "chance_empirical", "chance_identification")}
        stderr.print(json.dumps(shown, default=str), markup=False, highlight=False, soft_wrap=True)

    rows = run_privacy_utility(cfg, line)
    stem = f"privacy_utility_dp{tag}" if dp_grid else "privacy_utility"
    files = [str(out / f"{stem}.{ext}") for ext in ("json", "md", "png") if (out / f"{stem}.{ext}").is_file()]
    emit({"out": str(out), "files": files, "results": rows}, as_json,
         lambda: click.echo(f"{len(rows)} rows -> {', '.join(files)}"))  # fmt: skip
