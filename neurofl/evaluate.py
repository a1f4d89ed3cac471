"""`neurofl evaluate`: one federated round, the server inverts each victim's shared update, and
leakage is compared between the float ANN, the float SNN and the SNN under each hardware profile.

Each result row is computed in chunks of victims; every finished chunk is saved under
``OUT/rows/`` so an interrupted run resumes where it stopped and gives the same report.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl import __version__
from neurofl.atomic import atomic_write_bytes
from neurofl.attacks import AttackRecipe, invert, load_recipe, recover_labels
from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.gradients import per_sample_gradients
from neurofl.metrics import Oracle
from neurofl.models import Architecture, architecture_for, build_model
from neurofl.profiles import HardwareProfile, load_profile, quantize_update
from neurofl.report import markdown, profiles_png, reconstructions_png, write_json
from neurofl.scoring import Judge, score_row

CHUNK = 16  # victims optimized together; also the resume granularity


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation (everything that determines its results)."""

    profiles: tuple[str, ...] = ("loihi2",)
    dataset: str = "digits"
    attack: str = "inverting_gradients"
    clients: int = 8
    victims: int = 32
    batch_size: int = 1
    seed: int = 0
    out: Path = Path("runs/evaluate")
    data_dir: Path | None = None
    iterations: int | None = None  # overrides the recipe's (for quick runs and tests)
    arch: str = "auto"  # mlp | conv | auto (see neurofl.models.architecture_for)
    train_epochs: int = 15  # to report each row's test accuracy (0: skip)
    round: int = 1  # attack the updates of this federated round (1: the initial global model)
    encoding: str = "profile"  # SNN input encoding of static images: profile | direct | rate
    fl_lr: float | None = None  # FedAvg client learning rate for rounds before `round` (None: per model)

    def fingerprint(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("out")
        return json.loads(json.dumps(d, default=str))  # the form it takes in config.json


@dataclass(frozen=True)
class Victims:
    """The private batches whose updates the server attacks.

    x: (victims * batch, *input_shape), y: (victims * batch,), client: (victims,) the owning client.
    """

    x: torch.Tensor
    y: torch.Tensor
    client: np.ndarray
    index: np.ndarray  # (victims * batch,) row of each sample in the clients' data


ProgressFn = Callable[[str, int, int], None]  # (row name, victims done, victims total)


def iid_partition(n: int, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split indices ``range(n)`` into ``clients`` disjoint IID shards of near-equal size."""
    return [np.sort(s) for s in np.array_split(rng.permutation(n), clients)]


def draw_victims(x: np.ndarray, y: np.ndarray, cfg: EvaluateConfig) -> Victims:
    """Victim v belongs to client ``v % clients`` and holds ``batch_size`` samples of its shard."""
    rng = np.random.default_rng(cfg.seed)
    shards = iid_partition(len(x), cfg.clients, rng)
    per_client = -(-cfg.victims // cfg.clients) * cfg.batch_size
    if min(len(s) for s in shards) < per_client:
        raise UserError(
            f"--victims {cfg.victims} x --batch-size {cfg.batch_size} needs {per_client} samples per client, "
            f"but {cfg.clients} clients hold only {min(len(s) for s in shards)} each; use fewer victims or clients"
        )
    picks = [rng.permutation(s)[:per_client] for s in shards]
    idx, owner = [], []
    for v in range(cfg.victims):
        c = v % cfg.clients
        k = v // cfg.clients
        idx.extend(picks[c][k * cfg.batch_size : (k + 1) * cfg.batch_size])
        owner.append(c)
    idx = np.asarray(idx)
    return Victims(torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), np.asarray(owner), idx)


def shared_updates(
    model: torch.nn.Module, victims: Victims, profile: HardwareProfile, cfg: EvaluateConfig
) -> dict[str, torch.Tensor]:
    """What each victim client uploads: its FedSGD gradient, quantized as ``profile.update`` says.

    Returns name -> (victims, *weight_shape).
    """
    enc = torch.Generator().manual_seed(cfg.seed + 1000)  # the clients' private encoding randomness
    rnd = torch.Generator().manual_seed(cfg.seed + 2000)  # stochastic rounding
    grads = per_sample_gradients(model, victims.x, victims.y, generator=enc, group=cfg.batch_size)
    return {k: quantize_update(v.detach(), profile.update, rnd) for k, v in grads.items()}


def with_encoding(profile: HardwareProfile, encoding: str) -> HardwareProfile:
    """The profile with another input encoding of static images (``profile`` keeps its own).

    A binary-spike chip cannot take a graded (``direct``) input: refused."""
    if encoding in ("profile", profile.spikes.input_encoding):
        return profile
    if encoding == "direct" and profile.spikes.payload == "binary":
        raise UserError(f"--encoding direct: profile '{profile.name}' has binary spikes (payload = 'binary')")
    return dataclasses.replace(profile, spikes=dataclasses.replace(profile.spikes, input_encoding=encoding))


def _rows(profiles: list[HardwareProfile], encoding: str) -> list[tuple[str, HardwareProfile]]:
    f32 = with_encoding(load_profile("float32"), encoding)
    rows = [("ann", f32), ("snn", f32)]
    rows += [("snn", p) for p in profiles if p.name != "float32"]
    return rows


class RowStore:
    """Per-row chunk results on disk (``OUT/rows/<model>@<profile>/chunk_<k>.npz``)."""

    def __init__(self, out: Path, row: str):
        self.dir = out / "rows" / row

    def path(self, k: int) -> Path:
        return self.dir / f"chunk_{k:04d}.npz"

    def load(self, k: int) -> dict[str, np.ndarray] | None:
        p = self.path(k)
        if not p.is_file():
            return None
        with np.load(p) as z:
            return {name: z[name] for name in z.files}

    def save(self, k: int, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.path(k), buf.getvalue())


def _check_out(cfg: EvaluateConfig) -> None:
    """A run directory belongs to one configuration: refuse to mix results."""
    cfg_path = cfg.out / "config.json"
    mine = {"neurofl_version": __version__, **cfg.fingerprint()}
    if cfg_path.is_file():
        try:
            theirs = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise UserError(f"{cfg_path}: unreadable; remove it or use another --out") from None
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise UserError(f"{cfg.out} holds a run with different settings ({', '.join(diff)}); use another --out")
    else:
        write_json(cfg_path, mine)


def run_row(
    kind: str,
    profile: HardwareProfile,
    arch: Any,
    victims: Victims,
    recipe: AttackRecipe,
    cfg: EvaluateConfig,
    store: RowStore,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Attack every victim's update for one (model, profile) row, resuming from saved chunks."""
    model = build_model(kind, arch, profile, seed=cfg.seed)
    if cfg.round > 1:
        model.load_state_dict(global_model_at_round(kind, profile, arch, cfg, store.dir / "fl").state_dict())
    target = shared_updates(model, victims, profile, cfg)
    if recipe.labels == "idlg":
        labels = recover_labels(model, target, cfg.batch_size, tuple(arch.input_shape), cfg.seed)
    else:  # "known" hands the attacker the true labels; "joint" (DLG) optimizes them and ignores these
        labels = victims.y
    b = cfg.batch_size
    chunks = []
    for k, start in enumerate(range(0, cfg.victims, CHUNK)):
        done = store.load(k)
        if done is None:
            stop = min(start + CHUNK, cfg.victims)
            t0 = time.perf_counter()
            inv = invert(
                model,
                {n: t[start:stop] for n, t in target.items()},
                labels[start * b : stop * b],
                tuple(arch.input_shape),
                recipe,
                seed=cfg.seed + 1 + start,  # victim v always starts from seed + 1 + v (any chunking)
                batch=b,
                profile=profile,
            )
            used = inv.labels if inv.labels is not None else labels[start * b : stop * b]
            done = {
                "images": inv.images.numpy().astype(np.float32),
                "loss": inv.loss.numpy(),
                "labels": used.numpy(),
                "seconds": np.float64(time.perf_counter() - t0),
            }
            store.save(k, done)
        chunks.append(done)
        if on_chunk is not None:
            on_chunk(min(start + CHUNK, cfg.victims))
    return {
        "images": np.concatenate([c["images"] for c in chunks]),
        "loss": np.concatenate([c["loss"] for c in chunks]),
        "labels": np.concatenate([c["labels"] for c in chunks]),
        "seconds": np.float64(sum(float(c["seconds"]) for c in chunks)),
    }


# FedAvg client learning rates that train the digits models (measured: 10 rounds, 8 clients, 5 local
# steps of batch 16 take the ANN to 0.89 test accuracy at 0.5; the SNN diverges above ~0.05).
FL_LR = {"ann": 0.5, "snn": 0.03}


def global_model_at_round(
    kind: str, profile: HardwareProfile, arch: Any, cfg: EvaluateConfig, out: Path
) -> torch.nn.Module:
    """The global model at the start of round ``cfg.round``: ``cfg.round - 1`` rounds of FedAvg
    (all ``cfg.clients`` clients, 5 local SGD steps of batch 16, in the profile's arithmetic) with
    the local federated engine, checkpointed under ``out`` so a rerun resumes."""
    from neurofl.federated.engine import run_local
    from neurofl.federated.settings import fl_config
    from neurofl.federated.task import make_task

    if not isinstance(arch, Architecture):
        raise UserError("--round > 1 trains with the federated engine, which builds fully connected models only")
    fl = fl_config(
        {"clients": cfg.clients, "rounds": cfg.round - 1, "strategy": "fedavg", "local_steps": 5, "batch": 16,
         "lr": cfg.fl_lr or FL_LR[kind], "seed": cfg.seed},
        "evaluate --round",
    )  # fmt: skip
    task = make_task(load_dataset(cfg.dataset, cfg.data_dir), kind, profile, fl)
    return run_local(task, out=out).model


def utility_row(kind: str, profile: HardwareProfile, arch: Any, splits: Any, cfg: EvaluateConfig, out: Path) -> dict:
    """What the row costs and gives, cached in ``out/utility.json``: the test accuracy of the model
    trained under the profile (centrally, ``cfg.train_epochs`` epochs on the clients' data) and, for
    fully connected SNNs, cores, synaptic operations and energy per inference on the test split."""
    from neurofl.deploy.resources import estimate_resources
    from neurofl.models.snn import SpikingMLP
    from neurofl.train import train_model

    path = out / "utility.json"
    if path.is_file():
        return json.loads(path.read_text())
    util: dict[str, Any] = {"test_accuracy": None, "energy_uj": None, "synops": None, "cores": None}
    if cfg.train_epochs > 0:
        trained = train_model(kind, arch, profile, splits.clients, splits.test, cfg.train_epochs, cfg.seed)
        util["test_accuracy"] = trained.accuracy
        if isinstance(trained.model, SpikingMLP):
            rep = estimate_resources(trained.model, profile, torch.from_numpy(splits.test.x), seed=cfg.seed)
            util["synops"] = rep.synops_per_inference.value
            util["cores"] = rep.cores_used.value
            if rep.energy_per_inference is not None:
                util["energy_uj"] = rep.energy_per_inference.value
                util["energy_source"] = rep.energy_per_inference.source
    write_json(path, util)
    return util


def run_evaluate(cfg: EvaluateConfig, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run the evaluation and write report.json, report.md and reconstructions.png into ``cfg.out``.

    Returns the report (report.json's content).
    """
    if cfg.victims < 1 or cfg.clients < 1 or cfg.batch_size < 1 or cfg.round < 1:
        raise UserError("--victims, --clients, --batch-size and --round must be >= 1")
    profiles = [with_encoding(load_profile(p), cfg.encoding) for p in cfg.profiles]
    recipe = load_recipe(cfg.attack)
    if cfg.iterations is not None:
        recipe = dataclasses.replace(recipe, iterations=cfg.iterations)
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    splits = split_dataset(ds, cfg.seed)
    victims = draw_victims(splits.clients.x, splits.clients.y, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    _check_out(cfg)

    arch = architecture_for(ds.input_shape, ds.classes, cfg.arch)
    if ds.kind == "faces":
        judge = Judge("reid", None, splits.clients.x, events=False)
        chance, top = 1.0 / len(splits.clients.x), 1.0
    else:
        oracle = Oracle(cfg.seed).fit(splits.oracle.x, splits.oracle.y)
        judge = Judge("oracle", oracle, None, events=ds.kind == "events")
        chance, top = 1.0 / ds.classes, oracle.accuracy(victims.x.numpy(), victims.y.numpy())
    results, images = [], {}
    for kind, profile in _rows(profiles, cfg.encoding):
        name = f"{kind}@{profile.name}"
        store = RowStore(cfg.out, name)
        res = run_row(
            kind,
            profile,
            arch,
            victims,
            recipe,
            cfg,
            store,
            on_chunk=(lambda done, n=name: on_progress(n, done, cfg.victims)) if on_progress else None,
        )
        row = score_row(kind, profile.name, res, victims.x.numpy(), victims.y.numpy(), victims.index, judge)
        row.update(utility_row(kind, profile, arch, splits, cfg, store.dir))
        results.append(row)
        images[name] = res["images"]

    main_profile = profiles[-1].name
    ann = next(r for r in results if r["model"] == "ann")
    snn = next(r for r in results if r["model"] == "snn" and r["profile"] == main_profile)
    report = {
        "neurofl_version": __version__,
        "dataset": cfg.dataset,
        "attack": recipe.name,
        "attack_iterations": recipe.iterations,
        "profile": main_profile,
        "profiles": [p.name for p in profiles],
        "seed": cfg.seed,
        "clients": cfg.clients,
        "victims": cfg.victims,
        "batch_size": cfg.batch_size,
        "round": cfg.round,
        "encodings": {p.name: p.spikes.input_encoding for p in profiles},
        "arch": type(arch).__name__,
        "asr_kind": judge.top,
        "chance": chance,
        "oracle_accuracy": top,
        "oracle_test_accuracy": judge.oracle.accuracy(splits.test.x, splits.test.y) if judge.oracle else None,
        "results": results,
        "asr_reduction": (1 - snn["asr"] / ann["asr"]) if ann["asr"] > 0 else None,
    }
    write_json(cfg.out / "report.json", report)
    atomic_write_bytes(cfg.out / "report.md", markdown(report).encode())
    reconstructions_png(cfg.out / "reconstructions.png", victims.x.numpy(), images)
    if len(profiles) > 1:
        profiles_png(cfg.out / "profiles.png", report)
    return report
