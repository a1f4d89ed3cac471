"""`neurofl fl`: federated training of an SNN or ANN under a hardware profile."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from neurofl.commands.common import (
    FiniteFloat,
    budget_option,
    check_not_input,
    device_option,
    emit,
    json_option,
    progress,
    seed_option,
    stderr,
)
from neurofl.errors import UserError

FINITE = FiniteFloat()  # ranges are checked with the rest of the settings (neurofl/federated config)


# Seconds the TCP probe of --ray-address waits (Ray itself retries for ~20 s, printing warnings).
RAY_PROBE_SECONDS = 3.0


def probe_ray_address(address: str, timeout: float = RAY_PROBE_SECONDS) -> None:
    """Refuse an explicit ``--ray-address`` (``HOST:PORT``, ``HOST``, ``ray://HOST:PORT``) where no
    TCP port answers within ``timeout`` seconds, before Ray is started (an unreachable address made
    Ray print 21 lines of warnings over 20 s). ``auto`` is left to Ray.

    Raises
    ------
    UserError
        One line naming the address and why.
    """
    import socket

    text = address.strip()
    if text in ("", "auto", "local"):
        return
    client = text.startswith("ray://")
    rest = text[len("ray://") :] if client else text
    default = 10001 if client else 6379
    if rest.startswith("["):  # [IPv6]:port
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.lstrip(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    try:
        port = int(port_text) if port_text else default
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise UserError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except (OSError, UnicodeError) as e:
        why = "no answer" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or type(e).__name__)
        where = f"--ray-address {address}: nothing answers at {host}:{port}"
        raise UserError(f"{where} ({why}); is the Ray head running?") from None


def _rounds_list(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise UserError(
            f"--capture-rounds {value!r}: expected comma-separated round numbers, e.g. 1,10,50"
        ) from None


@click.command()
@click.option(
    "--backend",
    type=click.Choice(["local", "flower"]),
    default="local",
    show_default=True,
    help="local: in-process engine; flower: Flower ClientApp/ServerApp on Flower's Ray simulation engine.",
)
@click.option("--clients", type=int, help="Number of clients (required unless in --config).")
@click.option("--rounds", type=int, help="Communication rounds (required unless in --config).")
@click.option("--fraction", type=FINITE, help="Share of clients sampled per round [1.0].")
@click.option("--profile", default=None,
              help="Hardware profile name or TOML path [loihi2; with --model FILE: the checkpoint's].")
@click.option("--dataset", default=None, help="Dataset name [digits; with --model FILE: the checkpoint's].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder of on-disk datasets.")
@click.option("--model", "model_kind", default="snn", show_default=True,
              help="snn or ann (built from --seed), or a neurofl checkpoint (.pt, e.g. from `neurofl import`) "
                   "whose weights are the initial global model.")
@click.option("--strategy", type=click.Choice(["fedsgd", "fedavg", "fedprox"]), help="[fedsgd]")
@click.option("--partition", type=click.Choice(["iid", "dirichlet"]), help="[iid]")
@click.option("--alpha", type=FINITE, help="Dirichlet concentration (smaller: more label skew) [0.5].")
@click.option("--local-steps", type=int, help="Client SGD steps per round (fedavg/fedprox) [1].")
@click.option("--batch", type=int, help="Samples per client step [8].")
@click.option("--lr", type=FINITE, help="Client learning rate (FedSGD: server step) [0.5].")
@click.option("--mu", type=FINITE, help="FedProx proximal weight [0.01].")
@click.option("--defense", type=click.Choice(["none", "dp", "prune", "secagg"]), help="[none]")
@click.option("--dp-level", type=click.Choice(["sample", "client", "local"]),
              help="dp: sample (DP-SGD on each client: per-sample clipping and noise on the device), client "
                   "(DP-FedAvg: clients clip their update, the server adds the noise) or local (clients clip "
                   "their update and add the noise) [local].")
@click.option("--dp-clip", type=FINITE, help="dp: L2 clip of each sample's gradient (sample) or client update [1.0].")
@click.option("--dp-noise", type=FINITE, help="dp: noise multiplier (std / clip) [1.0]; or give --target-epsilon.")
@click.option("--target-epsilon", "--dp-epsilon", "dp_epsilon", type=FINITE,
              help="dp: calibrate the noise multiplier so that the whole schedule spends at most this epsilon.")
@click.option("--dp-delta", "--delta", "dp_delta", type=FINITE, help="dp: delta of the (epsilon, delta) [1e-5].")
@click.option("--prune-keep", type=FINITE, help="prune: share of entries kept per tensor [0.1].")
@click.option("--secagg-clip", type=FINITE, help="secagg: update entries are clipped to +-this (SecAgg+ range) [8].")
@click.option("--capture-rounds", help="Rounds whose updates are recorded, e.g. 1,10,50 (needs --out).")
@click.option("--capture-clients", type=int, help="Participants recorded per captured round [0].")
@seed_option(default=None, help="Seed of every random choice [0].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML file of these settings, or a shipped schedule's name (fl_digits_fedavg, fl_digits_onestep); "
    "command-line options override it.",
)
@click.option(
    "--cpus", type=int, default=2, show_default=True, help="flower: CPUs for Ray (one per running client)."
)
@click.option(
    "--nodes",
    type=int,
    help="flower: Flower nodes sharing the clients (client k on node k mod N) "
    "[one per CPU; secagg: one per client].",
)
@click.option(
    "--ray-address",
    help="flower: a running Ray cluster (auto, or HEAD:6379) to run the nodes on, instead of this machine.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run folder: history.json, accuracy.png, model.pt, updates/; rerunning with the same --out resumes.",
)
@device_option
@budget_option(
    "Memory a round may allocate (4G, 512M): a round whose estimate does not fit is refused before the first "
    "round, naming what to lower; with --backend flower the node processes that run at once and the server "
    "share it [80% of the memory available at start] (neurofl/runs/memory.py)."
)
@json_option
def fl(
    backend: str,
    profile: str | None,
    dataset: str | None,
    data_dir: Path | None,
    model_kind: str,
    config_file: Path | None,
    cpus: int,
    nodes: int | None,
    ray_address: str | None,
    out: Path | None,
    device: str,
    as_json: bool,
    max_memory: int | None = None,
    **settings: object,
) -> None:
    """Federated training with per-round test accuracy, defenses and update capture."""
    import dataclasses

    from neurofl.config import read_toml
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.recorder import run_fingerprint
    from neurofl.federated.task import check_round_memory, make_task
    from neurofl.models.model_file import fl_task, open_model_file, split_model_option
    from neurofl.profiles import load_profile
    from neurofl.runs.device import device_kind, resolve_device
    from neurofl.runs.memory import set_budget
    from neurofl.runs.runfolder import RunFolder, check_out_dir
    from neurofl.shipped import resolve_toml

    # Everything is validated before the first round (and before the progress bar shows), so a
    # refused run prints one line and leaves nothing under --out.
    settings["capture_rounds"] = _rounds_list(settings["capture_rounds"])  # type: ignore[arg-type]
    if config_file is not None:
        config_file = resolve_toml("fl_configs", config_file, "FL schedule")
    table = dict(read_toml(config_file)) if config_file else {}
    table.update({k: v for k, v in settings.items() if v is not None})
    cfg = fl_config(table, config_file or "command line")
    if cfg.capture_rounds and cfg.capture_clients and out is None:
        raise UserError("--capture-rounds needs --out DIR (captured updates are written to DIR/updates)")
    if not 1 <= cpus <= 4096:
        raise UserError(f"--cpus {cpus}: must be between 1 and 4096")
    for name, value in (("--nodes", nodes), ("--ray-address", ray_address)):
        if value is not None and backend != "flower":
            raise UserError(f"{name} applies to --backend flower only")
    if ray_address is not None and backend == "flower":
        probe_ray_address(ray_address)
    if out is not None:
        check_out_dir(out)
        check_not_input(out, {"--config": config_file, "--model": model_kind, "--data-dir": data_dir})
    dev = resolve_device(device)
    if backend == "flower" and dev.type != "cpu":  # Ray's client processes are CPU workers
        if device.strip().lower() != "auto":
            raise UserError(
                f"--device {device}: --backend flower runs its clients on the CPU; use --device cpu or auto"
            )
        dev = resolve_device("cpu")
    kind, model_file = split_model_option(model_kind)
    if model_file is not None:
        mf = open_model_file(model_file, dataset, profile)
        dataset, prof = mf.dataset, mf.profile
        task = fl_task(mf, load_dataset(dataset, data_dir), cfg)
    else:
        dataset, prof = dataset or "digits", load_profile(profile or "loihi2")
        task = make_task(load_dataset(dataset, data_dir), kind, prof, cfg)  # type: ignore[arg-type]
    task = dataclasses.replace(task, device=str(dev))
    model_kind = task.model_kind
    cfg = task.cfg  # with dp_epsilon: the calibrated noise multiplier
    if backend == "flower":
        from neurofl.federated.flower import flower_nodes

        nodes = flower_nodes(task, cpus, nodes)
    # a private Ray instance runs min(cpus, nodes) node processes at once beside the server; on a cluster
    # (--ray-address) each process has the budget of its own machine, as given
    limit = set_budget(max_memory)
    side_by_side = 1 if backend == "local" or ray_address is not None else min(cpus, nodes or 1) + 1
    check_round_memory(task, limit, nodes if backend == "flower" else None, side_by_side)

    folder = RunFolder(out, run_fingerprint(task)) if out is not None else contextlib.nullcontext()
    with folder, progress() as bar:
        job = bar.add_task(f"{backend}: {model_kind} on {dataset} ({prof.name})", total=cfg.rounds)

        def on_round(row: dict) -> None:
            bar.update(
                job,
                completed=row["round"],
                description=f"round {row['round']}: accuracy {row['accuracy']:.3f}",
            )

        if backend == "local":
            from neurofl.federated.engine import run_local

            result = run_local(task, out, on_round)
        else:
            from neurofl.federated.flower import run_flower

            result = run_flower(task, out, on_round, cpus=cpus, nodes=nodes, ray_address=ray_address)
        bar.update(job, completed=cfg.rounds)

    last = result.rows[-1]
    summary = {
        "backend": backend,
        "dataset": dataset,
        "model": model_kind,
        "model_file": {"path": str(model_file), **task.initial_identity} if model_file is not None else None,
        "profile": prof.name,
        "strategy": cfg.strategy,
        "defense": cfg.defense,
        "clients": cfg.clients,
        "per_round": cfg.per_round,
        "rounds": cfg.rounds,
        "resumed_from": result.resumed_from,
        "device": device_kind(dev),
        "final_accuracy": last["accuracy"],
        "final_loss": last["loss"],
        "epsilon": last.get("epsilon"),
        "delta": last.get("delta"),
        "dp": {"level": cfg.dp_level, "unit": last.get("dp_unit"), "noise_multiplier": cfg.dp_noise,
               "clip": cfg.dp_clip, "target_epsilon": cfg.dp_epsilon, "epsilon": last.get("epsilon"),
               "delta": cfg.dp_delta} if cfg.defense == "dp" else None,
        "out": str(out) if out else None,
        "history": result.rows,
    }

    def human() -> None:
        if result.resumed_from:
            stderr.print(f"resumed after round {result.resumed_from}")
        click.echo(
            f"final test accuracy {last['accuracy']:.3f} (loss {last['loss']:.3f}) after {cfg.rounds} rounds"
        )
        if "epsilon" in last:
            target = "" if cfg.dp_epsilon is None else f", calibrated for epsilon <= {cfg.dp_epsilon:g}"
            click.echo(
                f"dp ({cfg.dp_level} level): ({last['epsilon']:.3g}, {last['delta']:g})-DP per {last['dp_unit']} "
                f"(Opacus RDP accountant; noise multiplier {cfg.dp_noise:.4g}{target})"
            )
        if out:
            click.echo(f"wrote {out}/history.json, {out}/accuracy.png, {out}/model.pt")

    emit(summary, as_json, human)
