"""scripts/privacy_utility.py --dp-grid: DP runs captured, attacked on the evaluation core, reported
with intervals; the epsilon spent within the target; the same seed gives the same numbers."""

from __future__ import annotations

import json
import math

import pytest

TINY = """clients = 4
rounds = 2
fraction = 1.0
strategy = "fedavg"
local_steps = 2
batch = 4
lr = 0.3
seed = 0
"""


@pytest.fixture(scope="module")
def pu(load_script):
    return load_script("privacy_utility")


def _grid(pu, root, name: str, **kw) -> dict:
    config = root / "tiny.toml"
    config.write_text(TINY)
    out = root / name
    pu.dp_grid(out, [8.0], 1e-5, config=config, models=("ann",), iterations=3, capture_clients=2, **kw)
    return json.loads((out / "privacy_utility_dp.json").read_text())


def _numbers(report: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in report["results"]]


def test_dp_grid_attacks_every_row_and_repeats(pu, tmp_path):
    kw = {"attack_name": "inverting_gradients", "extras": ("secagg",)}
    first = _grid(pu, tmp_path, "a", **kw)
    rows = first["results"]
    assert [r["defense"] for r in rows] == ["none", "dp sample", "dp client", "secagg k=4"]
    assert first["attack"]["attacked_round"] == 1 and first["attack"]["iterations"] == 3
    for r in rows:
        lo, hi = r["asr_ci95"]
        assert 0.0 <= lo <= r["asr"] <= hi <= 1.0
        assert r["asr_successes"] == round(r["asr"] * r["samples"])
        assert r["samples"] == sum(r["samples_per_update"]) > 0
        assert r["attacked_round"] == [1]
        ig = r["per_attack"]["inverting_gradients"]
        assert ig["applicable"] and ig["asr_ci95"][0] <= ig["asr"] <= ig["asr_ci95"][1]
        assert r["chance"] == pytest.approx(0.1)
        assert set(r["chance_empirical"]) == {"uniform", "batch_mean", "random_images", "random_images_union",
                                              "class_mean", "label_image"}  # fmt: skip
        assert 0.0 <= r["chance_empirical"]["random_images"] <= 1.0
        # both judges on the same samples: identification's successes, interval and floor
        assert r["iip_successes"] == round(r["iip"] * r["samples"]) and r["iip_ci95"][0] <= r["iip"]
        assert r["chance_identification"]["exact"] == pytest.approx(1 / 180, rel=0.05)  # ~180 digits per label
        assert r["floor_iip"] >= r["chance_identification"]["exact"]
        if r["defense"].startswith("dp"):
            assert r["epsilon"] <= r["target_epsilon"] == 8.0 and r["noise_multiplier"] > 0
        else:
            assert r["epsilon"] is None
    clients = [r for r in rows if r["defense"] != "secagg k=4"]
    assert all(r["updates_attacked"] + len(r["skipped_empty_batch"]) == 2 for r in clients)
    agg = rows[-1]
    assert agg["updates_attacked"] == 1 and agg["samples"] == 4 * 4 and agg["clients_per_round"] == 4
    md = (tmp_path / "a" / "privacy_utility_dp.md").read_text()
    assert "worst-case ASR [95% CI]" in md and md.count("\n| ann |") == 4
    assert (tmp_path / "a" / "privacy_utility_dp.png").stat().st_size > 0
    again = _grid(pu, tmp_path, "b", **kw)
    assert _numbers(again) == _numbers(first)


def test_no_attack_applies_is_reported_not_zero(pu, tmp_path):
    # R-GAP reads single-sample, single-step gradients: on batch-4 FedAvg deltas it never applies.
    report = _grid(pu, tmp_path, "rgap", attack_name="rgap", extras=())
    for r in report["results"]:
        assert r["asr"] is None and r["asr_ci95"] == [None, None] and r["applicable_attacks"] == []
        assert not r["per_attack"]["rgap"]["applicable"] and r["per_attack"]["rgap"]["reason"]
    md = (tmp_path / "rgap" / "privacy_utility_dp.md").read_text()
    assert md.count("no attack applies") == 3 and "Not applicable: rgap:" in md


def test_accuracy_only_grid(pu, tmp_path):
    report = _grid(pu, tmp_path, "plain", attack_name=None)
    assert report["attack"] is None
    rows = report["results"]
    assert [r["defense"] for r in rows] == ["none", "dp sample", "dp client"]
    assert all("asr" not in r for r in rows)
    assert all(r["epsilon"] <= 8.0 for r in rows[1:]) and not math.isnan(rows[0]["final_accuracy"])


def test_same_uploads_share_one_attack_and_profiles_and_large_secagg(pu, tmp_path):
    """DP-FedAvg adds its noise at the server, so in round 1 every epsilon's server sees the same
    clipped uploads: one attack serves them all (same numbers, named source). Reference profiles add
    undefended rows; a secagg K above the schedule's clients spreads the data over K clients."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "g"
    pu.dp_grid(out, [4.0, 8.0], 1e-5, config=config, models=("ann",), iterations=3, capture_clients=2,
               attack_name="inverting_gradients", extras=("secagg8", "dplocal"),
               reference_profiles=("float32",))  # fmt: skip
    rows = json.loads((out / "privacy_utility_dp.json").read_text())["results"]
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
    assert agg["clients_per_round"] == 8 and agg["samples"] == 8 * 4 and agg["updates_attacked"] == 1
    ref = by[("none", None, "float32")]
    assert "unquantized" in ref["attacked"] and "attack_reused_from" not in ref
    md = (out / "privacy_utility_dp.md").read_text()
    assert "| ann | float32 | none |" in md and "attack shared" in md


def test_grid_settings_refuse_unknown_and_degenerate_defenses(pu):
    rows = pu.grid_settings([1.0], ["secagg", "secagg16"], 10)
    assert rows[-2] == ("secagg k=4", None, {"defense": "secagg", "fraction": 0.4})
    assert rows[-1] == ("secagg k=16", None, {"defense": "secagg", "clients": 16, "fraction": 1.0})
    for bad in ("secagg1", "secaggx", "noise"):
        with pytest.raises(SystemExit, match=bad):
            pu.grid_settings([1.0], [bad], 10)
