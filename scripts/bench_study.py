"""How a small study scales: `neurofl study` in process, on a private local Ray instance of 2 CPUs, and on
a local Ray cluster of two nodes of 1 CPU each (docs/study.md), on the same settings.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_study.py [--out results/study_scaling.json]
        [--settings workers1,workers2,cluster2] [--datasets digits] [--batches 1,4] [--victims 4]
        [--iterations N] [--train-epochs 0] [--attack suite_study] [--repeats 1] [--compare STUDY_JSON]

Each setting is a fresh `neurofl study` process writing to a fresh folder (nothing resumed). The
two-node cluster is started here (`ray start --head --num-cpus 1` and `ray start --address ...
--num-cpus 1`, both with `--block` in their own process group on 127.0.0.1 and a free port) and
stopped by signalling those two process groups, never with `ray stop` (which would stop every Ray
process of the user on the machine). Writes one JSON object: each setting's wall seconds, its
tasks and the Ray nodes that ran them, the machine's thread settings and load average before and
after each run, and whether each setting's study.json equals the in-process one apart from timings
(the first setting's), and, with ``--compare``, an earlier run's study.json of the same settings (for
example the default study on one node against the same study on the two-node cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TIMING = {"seconds", "wall_seconds", "attack_seconds", "phases", "execution"}
RAY = str(Path(sys.executable).with_name("ray"))


def without_timing(obj):  # noqa: ANN001, ANN201 - JSON in, JSON out
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_nodes(address: str, nodes: int, timeout: float = 120.0) -> None:
    """Wait until the cluster at ``address`` has ``nodes`` live nodes (asked in a separate process)."""
    probe = (f"import ray; ray.init(address={address!r}, include_dashboard=False, log_to_driver=False, "
             "logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))")  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(nodes)]:
            return
        time.sleep(2)
    raise RuntimeError(f"the local Ray cluster at {address} did not reach {nodes} nodes in {timeout:.0f} s")


@contextlib.contextmanager
def local_cluster(tmp: Path) -> Iterator[str]:
    """A head and one worker node of 1 CPU each on this machine; stopped by their own process groups."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    procs = []
    logs = []
    try:
        # the head's own --temp-dir: its address file is not /tmp/ray's, so no `ray.init()` of another
        # program on this machine joins this cluster by accident
        for i, args in enumerate((["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                                   "--include-dashboard", "false", "--temp-dir", str(tmp / "ray")],
                                  ["--address", address, "--node-ip-address", "127.0.0.1"])):  # fmt: skip
            log = open(tmp / f"ray_node{i}.log", "w")  # noqa: SIM115 - closed in finally
            logs.append(log)
            procs.append(subprocess.Popen([RAY, "start", *args, "--num-cpus", "1", "--block", "--disable-usage-stats"],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
            if i == 0:
                _wait_for_nodes(address, 1)
        _wait_for_nodes(address, 2)
        yield address
    finally:
        for p in reversed(procs):  # the worker node first, then the head
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        time.sleep(2)
        for p in procs:  # whatever the node started in its group (raylet, its workers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def run_study(args: argparse.Namespace, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "neurofl", "study", "--datasets", args.datasets, "--batches", args.batches,
           "--victims", str(args.victims), "--train-epochs", str(args.train_epochs), "--attack", args.attack,
           "--profiles", args.profiles, "--device", "cpu", "--out", str(out), *extra]  # fmt: skip
    if args.iterations is not None:
        cmd += ["--iterations", str(args.iterations)]
    load_before = os.getloadavg()
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    study = json.loads((out / "study.json").read_text())
    return {"wall_seconds": seconds, "load_average_before": list(load_before), "load_average_after":
            list(os.getloadavg()), "tasks": study["tasks"], "execution": study["execution"],
            "command": " ".join(["neurofl", *cmd[3:]])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--settings", default="workers1,workers2,cluster2")
    ap.add_argument("--datasets", default="digits")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--victims", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--train-epochs", type=int, default=0)
    ap.add_argument("--attack", default="suite_study")
    ap.add_argument("--profiles", default="loihi2,loihi1")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the studies (default: a temporary one).")
    ap.add_argument("--repeats", type=int, default=1, help="Runs of each setting, interleaved.")
    ap.add_argument("--compare", type=Path, default=None,
                    help="An earlier run's study.json: record whether every run equals it apart from timings.")
    args = ap.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = set(settings) - {"workers1", "workers2", "cluster2"}
    if unknown:
        ap.error(f"unknown setting {sorted(unknown)[0]}")
    if args.compare is not None and not args.compare.is_file():
        ap.error(f"--compare {args.compare}: no such file")
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    studies: dict[str, list[dict]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        work = args.work or tmp
        for rep in range(args.repeats):  # the settings interleaved, so a change of the machine's load hits all
            for name in settings:
                out = work / f"{name}-{rep}"
                if name == "workers1":
                    run = run_study(args, out, ["--workers", "1"])
                elif name == "workers2":
                    run = run_study(args, out, ["--workers", "2"])
                else:
                    with local_cluster(tmp) as address:
                        run = run_study(args, out, ["--ray-address", address])
                runs[name].append(run)
                studies[name].append(without_timing(json.loads((out / "study.json").read_text())))
                print(json.dumps({name: run}), flush=True)
                write(args, settings, runs, studies)  # after each run: a partial benchmark is readable


def write(args: argparse.Namespace, settings: list[str], runs: dict[str, list[dict]],
          studies: dict[str, list[dict]]) -> None:  # fmt: skip
    import statistics

    import ray
    import torch

    base = settings[0]
    done = [name for name in settings if runs[name]]
    median = {name: statistics.median(r["wall_seconds"] for r in runs[name]) for name in done}
    reference = studies[base][0] if studies[base] else None
    result = {
        "benchmark": "bench_study",
        "settings": {"datasets": args.datasets, "batches": args.batches, "victims": args.victims,
                     "iterations": args.iterations, "train_epochs": args.train_epochs, "attack": args.attack,
                     "profiles": args.profiles},  # fmt: skip
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "ray": ray.__version__, "torch_threads_per_task": 1,
                    **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NEUROFL_THREADS")}},  # fmt: skip
        "repeats": args.repeats,
        "runs": runs,
        "median_wall_seconds": median,
        "baseline": base,
        # every run's study.json (timings and execution left out) against the baseline's first run
        "identical_to_baseline_apart_from_timings": {name: all(s == reference for s in studies[name])
                                                     for name in done},  # fmt: skip
        "speedup_of_medians": {name: median[base] / median[name] for name in done if base in median},
        "load_average_note": "the machine is shared: each run records the 1, 5 and 15 min load averages "
                             "before and after it (2 CPUs; a load above 2 means other work competed)",
    }
    if args.compare is not None:
        earlier = json.loads(args.compare.read_text())
        earlier_study = without_timing(earlier)
        result["compared_with"] = {
            "study": os.path.relpath(args.compare),
            "execution": earlier.get("execution"),
            "identical_apart_from_timings": {name: all(s == earlier_study for s in studies[name]) for name in done},
        }
    if args.out is None:
        print(json.dumps(result, indent=2))
    else:
        from neurofl.report import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
