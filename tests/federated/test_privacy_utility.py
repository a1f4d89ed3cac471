"""`neurofl privacy-utility --dp-grid`: DP runs captured and attacked on the evaluation core (every
leakage entry of a row is the core's `neurofl attack --updates` report of that run's captures),
the epsilon spent within the target, resumable by content, the same seed giving the same numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from neurofl.cli import run
from neurofl.errors import UserError
from neurofl.pipelines.defense_grid import FIXED_SETTINGS, dp_grid_settings
from neurofl.pipelines.privacy_utility import PrivacyUtilityConfig, run_privacy_utility

TINY = """clients = 4
rounds = 2
fraction = 1.0
strategy = "fedavg"
local_steps = 2
batch = 4
lr = 0.3
seed = 0
"""


def _config(root: Path) -> Path:
    config = root / "tiny.toml"
    config.write_text(TINY)
    return config


def _grid(root: Path, name: str, **kw) -> dict:
    kw = {"epsilons": (8.0,), "models": ("ann",), "iterations": 3, "capture_clients": 2, "extras": (), **kw}
    out = root / name
    run_privacy_utility(PrivacyUtilityConfig(out=out, dp_grid=True, config=_config(root), **kw))
    return json.loads((out / "privacy_utility_dp.json").read_text())


def _timeless(v):
    """``v`` without its wall-clock entries (``seconds*`` keys, at any depth)."""
    if isinstance(v, dict):
        return {k: _timeless(x) for k, x in v.items() if not k.startswith("seconds")}
    return v


def _numbers(report: dict) -> list[dict]:
    return [_timeless(r) for r in report["results"]]


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("grid")
    return root, _grid(root, "a", attack="inverting_gradients", extras=("secagg",))


def test_dp_grid_rows_are_the_cores_reports_of_their_captures(grid):
    root, first = grid
    rows = first["results"]
    assert [r["defense"] for r in rows] == ["none", "dp sample", "dp client", "secagg k=4"]
    assert first["attack"]["attacked_round"] == 1 and first["attack"]["iterations"] == 3
    slugs = ["ann-none", "ann-dp_sample-eps8", "ann-dp_client-eps8", "ann-secagg_k4"]
    for r, slug in zip(rows, slugs, strict=True):
        run_dir = root / "a" / "runs_dp" / slug
        report = json.loads((run_dir / "attack" / "report.json").read_text())
        core = report["results"][0]
        # every leakage entry as the core computed it on the run's captures (one report, any batch sizes)
        for key in ("asr", "asr_ci95", "asr_successes", "iip", "iip_ci95", "iip_successes", "samples", "per_attack",
                    "chance_worst_case", "chance_worst_case_iip"):  # fmt: skip
            assert r[key] == core[key], key
        assert r["chance_empirical"] == report["chance_empirical"]
        assert r["chance_identification"] == report["identification"]["chance"]
        caps = sorted(p.name for p in (run_dir / "updates").glob("round*_*.pt"))
        assert r["updates_attacked"] == len(caps) and r["attacked_round"] == [1]
        assert r["samples"] == sum(r["samples_per_update"]) == sum(report["batch_sizes"].values())
        assert sorted(int(b) for b in report["batch_sizes"]) == sorted(set(r["samples_per_update"]))
        assert r["floor"] == core["chance_worst_case"] and r["floor_iip"] == core["chance_worst_case_iip"]
        assert r["beyond_floor"] == (r["asr_ci95"][0] > r["floor"])
        assert r["beyond_floor_iip"] == (r["iip_ci95"][0] > r["floor_iip"])
        assert r["floor_iip"] >= r["chance_identification"]["exact"]
        assert r["chance_identification"]["exact"] == pytest.approx(1 / 180, rel=0.05)  # ~180 digits per label
        assert r["chance"] == pytest.approx(0.1)
        if r["defense"].startswith("dp"):
            assert r["epsilon"] <= r["target_epsilon"] == 8.0 and r["noise_multiplier"] > 0
        else:
            assert r["epsilon"] is None
    # DP-SGD's Poisson samples differ in size: the one report scores both sizes together
    assert len(set(rows[1]["samples_per_update"])) == 2
    clients = [r for r in rows if r["defense"] != "secagg k=4"]
    assert all(r["updates_attacked"] == 2 for r in clients)
    agg = rows[-1]
    # the aggregate's truth: every summed client's samples, 2 local steps of 4 fresh samples each
    assert agg["updates_attacked"] == 1 and agg["samples"] == 4 * 2 * 4 and agg["clients_per_round"] == 4
    md = (root / "a" / "privacy_utility_dp.md").read_text()
    assert "worst-case ASR [95% CI]" in md and md.count("\n| ann |") == 4 and "(worst case)" in md
    assert (root / "a" / "privacy_utility_dp.png").stat().st_size > 0


def test_the_same_seed_gives_the_same_numbers(grid, tmp_path):
    _, first = grid
    again = _grid(tmp_path, "b", attack="inverting_gradients", extras=("secagg",))
    assert _numbers(again) == _numbers(first)


def test_the_command_resumes_the_grid_and_prints_one_json_object(grid, capsys):
    """The same settings and --work: every run and attack is found by its content, nothing is
    recomputed (the numbers are the library run's), and the command prints one JSON object."""
    root, first = grid
    args = ["privacy-utility", "--dp-grid", "--config", str(root / "tiny.toml"), "--epsilons", "8", "--models", "ann",
            "--extras", "secagg", "--iterations", "3", "--capture-clients", "2", "--attack", "inverting_gradients",
            "--work", str(root / "a" / "runs_dp"), "--out", str(root / "cli"), "--json"]  # fmt: skip
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == [str(root / "cli" / f"privacy_utility_dp.{e}") for e in ("json", "md", "png")]
    written = json.loads((root / "cli" / "privacy_utility_dp.json").read_text())
    assert _numbers(written) == _numbers(first)
    assert [_timeless(r) for r in out["results"]] == _numbers(first)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--extras", "noise"], "unknown defense 'noise'"),
        (["--extras", "secagg1"], "at least 2 clients"),
        (["--epsilons", "1,nan"], "--epsilons"),
        (["--models", "cnn"], "--models"),
        (["--set", "rounds"], "--set"),
        (["--set", "colour=3"], "colour"),
    ],
)
def test_bad_grid_options_exit_2_in_one_line(tmp_path, capsys, extra, needle):
    args = ["privacy-utility", "--dp-grid", "--config", str(_config(tmp_path)), "--out", str(tmp_path / "o"),
            "--work", str(tmp_path / "w"), "--json", *extra]  # fmt: skip
    assert run(args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "privacy_utility_dp.json").exists()


def test_grid_only_options_are_refused_without_dp_grid(tmp_path, capsys):
    assert run(["privacy-utility", "--tag", "_x", "--out", str(tmp_path)]) == 2
    assert "--tag applies to --dp-grid only" in capsys.readouterr().err


def test_no_attack_applies_is_reported_not_zero(tmp_path):
    # R-GAP reads single-sample, single-step gradients: on batch-4 FedAvg deltas it never applies.
    report = _grid(tmp_path, "rgap", attack="rgap")
    for r in report["results"]:
        assert r["asr"] is None and r["asr_ci95"] == [None, None] and r["applicable_attacks"] == []
        assert r["beyond_floor"] is None and r["beyond_floor_iip"] is None
        assert not r["per_attack"]["rgap"]["applicable"] and r["per_attack"]["rgap"]["reason"]
    md = (tmp_path / "rgap" / "privacy_utility_dp.md").read_text()
    assert md.count("no attack applies") == 3 and "Not applicable: rgap:" in md


def test_accuracy_only_grid(tmp_path):
    report = _grid(tmp_path, "plain", attack=None)
    assert report["attack"] is None
    rows = report["results"]
    assert [r["defense"] for r in rows] == ["none", "dp sample", "dp client"]
    assert all("asr" not in r for r in rows)
    assert all(r["epsilon"] <= 8.0 for r in rows[1:]) and not math.isnan(rows[0]["final_accuracy"])
    assert not (tmp_path / "plain" / "privacy_utility_dp.png").exists()


def test_same_uploads_share_one_attack_and_profiles_and_large_secagg(tmp_path):
    """DP-FedAvg adds its noise at the server, so in round 1 every epsilon's server sees the same
    clipped uploads: one attack serves them all (same numbers, named source). Reference profiles add
    undefended rows; a secagg K above the schedule's clients spreads the data over K clients."""
    report = _grid(tmp_path, "g", epsilons=(4.0, 8.0), attack="inverting_gradients", extras=("secagg8", "dplocal"),
                   reference_profiles=("float32",))  # fmt: skip
    rows = report["results"]
    assert [(r["defense"], r["target_epsilon"], r["profile"]) for r in rows] == [
        ("none", None, "loihi2"), ("dp sample", 4.0, "loihi2"), ("dp sample", 8.0, "loihi2"),
        ("dp client", 4.0, "loihi2"), ("dp client", 8.0, "loihi2"), ("secagg k=8", None, "loihi2"),
        ("dp local", 4.0, "loihi2"), ("dp local", 8.0, "loihi2"), ("none", None, "float32"),
    ]  # fmt: skip
    by = {(r["defense"], r["target_epsilon"], r["profile"]): r for r in rows}
    c4, c8 = by[("dp client", 4.0, "loihi2")], by[("dp client", 8.0, "loihi2")]
    assert c8["attack_reused_from"] in ("ann-none", "ann-dp_client-eps4")
    assert c8["per_attack"] == c4["per_attack"] and c8["asr"] == c4["asr"]
    assert c4["noise_multiplier"] > c8["noise_multiplier"]  # but each is its own training run
    for level in ("dp sample", "dp local"):  # noised on the device: every epsilon uploads its own
        r = by[(level, 8.0, "loihi2")]
        unit = {"dp sample": "sample", "dp local": "client"}[level]
        assert "attack_reused_from" not in r and r["epsilon"] <= 8.0 and r["dp_unit"] == unit
    agg = by[("secagg k=8", None, "loihi2")]
    assert agg["clients_per_round"] == 8 and agg["samples"] == 8 * 2 * 4 and agg["updates_attacked"] == 1
    ref = by[("none", None, "float32")]
    assert "unquantized" in ref["attacked"] and "attack_reused_from" not in ref
    md = (tmp_path / "g" / "privacy_utility_dp.md").read_text()
    assert "| ann | float32 | none |" in md and "attack shared" in md


def test_grid_settings_refuse_unknown_and_degenerate_defenses():
    rows = dp_grid_settings([1.0], ["secagg", "secagg16"], 10)
    assert rows[-2] == ("secagg k=4", None, {"defense": "secagg", "fraction": 0.4})
    assert rows[-1] == ("secagg k=16", None, {"defense": "secagg", "clients": 16, "fraction": 1.0})
    for bad in ("secagg1", "secaggx", "noise"):
        with pytest.raises(UserError, match=bad):
            dp_grid_settings([1.0], [bad], 10)


def test_fixed_grid_rows_are_the_cores_reports(tmp_path, capsys):
    """The fixed FedSGD grid: every defense for both models, the captures of rounds 1 and the last
    attacked by `attack --updates` (its report under each run's folder), the table and plot written."""
    args = ["privacy-utility", "--rounds", "2", "--iterations", "2", "--attack", "inverting_gradients",
            "--out", str(tmp_path), "--json"]  # fmt: skip
    assert run(args) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["model"], r["defense"]) for r in rows] == [
        (k, d) for k in ("ann", "snn") for d in ("none", "quantization (loihi2 int8)", "dp sigma=0.01", "dp sigma=0.1",
                                                  "prune keep 10%", "secagg k=4")]  # fmt: skip
    folders = [tmp_path / "runs" / f"{k}-{label.split()[0]}-{profile}-{extra.get('dp_noise', '')}"
               for k in ("ann", "snn") for label, profile, extra in FIXED_SETTINGS]  # fmt: skip
    for r, folder in zip(rows, folders, strict=True):
        report = json.loads((folder / "attack" / "report.json").read_text())
        core = report["results"][0]
        assert report["updates"] == str(folder / "updates") and core["model"] == r["model"]
        for key in ("iip", "iip_ci95", "asr", "asr_ci95", "samples", "psnr"):
            assert r[key] == core[key], key
        assert r["floor"] == core["chance_worst_case"] and r["floor_iip"] == core["chance_worst_case_iip"]
        # rounds 1 and 2, 4 clients each (secagg: the aggregate of each round)
        assert r["updates_attacked"] == (2 if r["defense"].startswith("secagg") else 8) and r["samples"] == 8
    written = json.loads((tmp_path / "privacy_utility.json").read_text())
    assert written["rounds"] == 2 and written["chance"] == pytest.approx(0.1) and len(written["results"]) == 12
    md = (tmp_path / "privacy_utility.md").read_text()
    assert md.count("\n| snn |") == 6 and "worst case identified [95% CI]" in md
    assert (tmp_path / "privacy_utility.png").stat().st_size > 0
