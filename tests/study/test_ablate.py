"""`neurofl study --ablate KEY=V1,V2,...` (neurofl.ablation): each axis changes the built SNN in its key
and nowhere else; bad keys and values are refused in one line; an ablated study is content-identified,
resumes and gives the same study.json on rerun."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from neurofl.cli import run

TIMING = {"seconds", "wall_seconds", "attack_seconds", "phases", "execution"}


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A dataclass (or dict) as ``{"section.key": value}``, documentation (``source``) left out."""
    d = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif k != "source":
            out[f"{prefix}{k}"] = v
    return out


def _config(model: torch.nn.Module, profile: Any, arch: Any) -> dict[str, Any]:
    """What a built SNN is made of: its profile, its neuron parameters, and what the model took from them."""
    neuron = model.blocks[0].neuron
    return {**_flat(profile, "profile."), **_flat(arch.neuron, "neuron."), "model.time_steps": model.time_steps,
            "model.encoding": model.encoding, "model.tau_rho": float(neuron.tau_rho),
            "model.voltage_decay": float(neuron.voltage_decay), "model.surrogate": neuron.surrogate,
            "model.reset": neuron.reset, "model.graded_spike": bool(neuron.graded_spike)}  # fmt: skip


# (ablation, the configuration keys it must change, the state_dict entries it must change)
AXES = [
    ("time_steps=4", {"profile.simulation.time_steps", "model.time_steps"}, set()),
    ("encoding=rate", {"profile.spikes.input_encoding", "model.encoding"}, set()),
    ("encoding=regular", {"profile.spikes.input_encoding", "model.encoding"}, set()),
    ("surrogate_width=2", {"neuron.tau_grad", "model.tau_rho"}, set()),
    ("leak=off", {"neuron.voltage_decay", "model.voltage_decay"},
     {"blocks.0.neuron.voltage_decay", "blocks.1.neuron.voltage_decay"}),
    ("surrogate_shape=triangle", {"neuron.surrogate", "model.surrogate"}, set()),
    ("surrogate_shape=fast_sigmoid", {"neuron.surrogate", "model.surrogate"}, set()),
    ("reset=subtract", {"neuron.reset", "model.reset"}, set()),
    ("payload=graded", {"neuron.payload", "model.graded_spike", "model.surrogate"}, set()),
    ("upload=int4", {"profile.update.bits"}, set()),
    ("upload=float32", {"profile.update.format", "profile.update.bits"}, set()),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "keys", "state"), AXES, ids=[a[0] for a in AXES])
def test_each_axis_changes_the_built_model_in_its_key_only(spec, keys, state):
    from neurofl.ablation import parse_ablate
    from neurofl.models import architecture_for, build_model
    from neurofl.profiles import load_profile

    arch, profile = architecture_for((1, 8, 8), 10), load_profile("loihi2")
    (ablation,) = parse_ablate([spec])
    prof, ab_arch = ablation.apply(profile, arch)
    base, ablated = build_model("snn", arch, profile, seed=0), build_model("snn", ab_arch, prof, seed=0)
    ours, theirs = _config(base, profile, arch), _config(ablated, prof, ab_arch)
    assert {k for k in ours if ours[k] != theirs[k]} == keys
    sa, sb = base.state_dict(), ablated.state_dict()
    assert sa.keys() == sb.keys()
    assert {k for k in sa if not torch.equal(sa[k], sb[k])} == state
    assert ablation.base_value(profile, arch) != ablation.value


def test_the_deterministic_rate_code_spikes_floor_p_t_times_evenly():
    from neurofl.data.encoding import encode

    x = torch.tensor([[0.0, 0.25, 0.5, 1.0, 0.3]])
    s = encode(x, "regular", 8)
    assert torch.equal(s, encode(x, "regular", 8))  # no draw
    assert s.detach().sum(-1).tolist() == [[0.0, 2.0, 4.0, 8.0, 2.0]]
    assert s[0, 2].detach().tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def test_event_inputs_are_their_own_time_steps_and_encoding():
    from neurofl.ablation import NotApplicable, parse_ablate
    from neurofl.models import architecture_for
    from neurofl.profiles import load_profile

    events, static = architecture_for((2, 20, 20, 16), 10), architecture_for((1, 8, 8), 10)
    profile = load_profile("loihi2")
    t4, rate, ev = parse_ablate(["time_steps=4", "encoding=rate,events"])
    for a, arch, why in ((t4, events, "own time steps"), (rate, events, "own encoding"), (ev, static, "no events"),
                         (ev, events, "the unablated row's")):  # fmt: skip
        with pytest.raises(NotApplicable, match=why):
            a.apply(profile, arch)


def test_graded_hidden_spikes_apply_only_where_the_chip_sends_a_payload():
    from neurofl.ablation import NotApplicable, parse_ablate
    from neurofl.models import architecture_for
    from neurofl.profiles import load_profile

    (graded,) = parse_ablate(["payload=graded"])
    arch = architecture_for((1, 8, 8), 10)
    with pytest.raises(NotApplicable, match="'loihi1' spikes carry no payload"):
        graded.apply(load_profile("loihi1"), arch)
    assert graded.apply(load_profile("float32"), arch)[1].neuron.payload == "graded"


@pytest.mark.parametrize(("spec", "says"), [
    ("colour=red", "unknown key 'colour'"),
    ("time_steps=0", "time_steps='0'"),
    ("time_steps=four", "time_steps='four'"),
    ("encoding=morse", "encoding='morse'"),
    ("surrogate_width=-1", "surrogate_width='-1'"),
    ("leak=maybe", "leak='maybe'"),
    ("upload=int1", "upload='int1'"),
    ("upload=float16", "upload='float16'"),
    ("time_steps", "expected time_steps=V1,V2"),
    ("reset=halfway", "reset='halfway'"),
    ("surrogate_shape=boxcar", "surrogate_shape='boxcar'"),
    ("payload=count", "payload='count'"),
])  # fmt: skip
def test_parsing_refuses_unknown_keys_and_bad_values(spec, says):
    from neurofl.ablation import parse_ablate
    from neurofl.errors import UserError

    with pytest.raises(UserError, match=None) as e:
        parse_ablate([spec])
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_value_the_profile_cannot_take_is_refused_in_one_line():
    from neurofl.ablation import parse_ablate
    from neurofl.errors import UserError
    from neurofl.models import architecture_for
    from neurofl.profiles import load_profile

    (direct,) = parse_ablate(["encoding=direct"])
    with pytest.raises(UserError, match=r"--ablate encoding=direct on profile 'loihi1': .*graded"):
        direct.apply(load_profile("loihi1"), architecture_for((1, 8, 8), 10))


SUITE = 'name = "tiny"\nrecipes = ["inverting_gradients"]\n'


def _args(suite: Path, out: Path, *ablate: str) -> list[str]:
    return ["study", "--datasets", "digits", "--batches", "1", "--victims", "2", "--min-victims", "2",
            "--iterations", "2", "--train-epochs", "0", "--profiles", "loihi2", "--attack", str(suite),
            "--out", str(out), "--device", "cpu", *(f"--ablate={a}" for a in ablate)]  # fmt: skip


def _without_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def test_the_command_refuses_a_bad_ablation_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "study"
    assert run(_args(tmp_path / "none.toml", out, "time_steps=0")) == 2
    err = capsys.readouterr().err.strip()
    assert "time_steps='0'" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_tiny_ablated_study_resumes_and_gives_the_same_study(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    out = tmp_path / "study"
    assert run(_args(suite, out, "time_steps=4", "upload=int4")) == 0
    printed = capsys.readouterr().out
    study = json.loads((out / "study.json").read_text())
    (cell,) = study["datasets"][0]["cells"]
    assert [f"{r['model']}@{r['profile']}" for r in cell["rows"]] == \
        ["ann@float32", "snn@float32", "snn@loihi2", "snn@loihi2[time_steps=4]", "snn@loihi2[upload=int4]"]  # fmt: skip
    assert study["ablate"] == ["time_steps=4", "upload=int4"]
    assert study["tasks"]["computed"] == 10 and study["failed"] == []
    ax = study["ablations"]["time_steps"]["cells"][0]
    assert [(e["value"], e["base"]) for e in ax["values"]] == [("4", False), ("16", True)]
    assert "### time_steps" in printed and "### upload" in printed and "Verdict:" in printed
    assert "## Ablations" in (out / "study.md").read_text()
    assert (out / "ablation_time_steps.png").is_file() and (out / "ablation_upload.png").is_file()
    rows = sorted(p.name for p in (out / "digits" / "batch1" / "rows").iterdir())
    assert len(rows) == 5 and any(n.startswith("snn_loihi2_time_steps_4-") for n in rows)

    assert run(_args(suite, out, "time_steps=4", "upload=int4")) == 0  # the rerun computes nothing
    again = json.loads((out / "study.json").read_text())
    assert again["tasks"]["computed"] == 0 and again["tasks"]["cached"] == 10
    assert _without_timing({**again, "tasks": None}) == _without_timing({**study, "tasks": None})


def test_rows_of_an_axis_that_does_not_apply_are_listed_with_why_and_float32_alone_is_refused():
    from neurofl.ablation import parse_ablate
    from neurofl.errors import UserError
    from neurofl.models import architecture_for
    from neurofl.pipelines.evaluate import EvaluateConfig, ablated_rows, plan_evaluation, plan_rows

    rows = plan_rows(("loihi2",), "profile")
    more, skipped = ablated_rows(rows, parse_ablate(["time_steps=4"]), architecture_for((2, 20, 20, 16), 10))
    assert more == [] and skipped == {"snn@loihi2[time_steps=4]": "event inputs bring their own time steps"}
    more, skipped = ablated_rows(rows, parse_ablate(["time_steps=4,8"]), architecture_for((1, 8, 8), 10))
    assert [r.label for r in more] == ["loihi2[time_steps=4]", "loihi2[time_steps=8]"] and not skipped
    assert len({r.key for r in [*rows, *more]}) == len(rows) + 2  # the override is part of the row's content
    with pytest.raises(UserError, match="name one in --profiles"):
        plan_evaluation(EvaluateConfig(profiles=("float32",), victims=2, ablations=parse_ablate(["leak=off"])))


def test_an_axis_moves_leakage_only_where_two_intervals_are_disjoint():
    from neurofl.study.ablations import cell_verdict

    def e(value: str, leak: Any, lo: Any, hi: Any, base: bool = False) -> dict:
        return {"value": value, "base": base, "leakage": leak, "ci95": [lo, hi]}

    moved, line = cell_verdict("time_steps", [e("1", 0.1, 0.0, 0.3), e("16", 0.9, 0.7, 1.0, True)])
    assert moved and line.startswith("moves leakage beyond the intervals: time_steps=16 (base) 0.90")
    moved, _ = cell_verdict("time_steps", [e("1", 0.4, 0.2, 0.6), e("16", 0.7, 0.5, 0.9, True)])
    assert moved is False
    assert cell_verdict("time_steps", [e("1", None, None, None)])[0] is None
    dead = {**e("1", 0.0, 0.0, 0.1), "learns": False}  # a network that ignores its input uploads nothing to leak
    moved, line = cell_verdict("time_steps", [dead, e("4", 0.9, 0.8, 1.0), e("16", 0.85, 0.7, 0.95, True)])
    assert moved is False and line.endswith("not compared, does not learn: time_steps=1")


def test_the_help_names_every_axis_and_value(capsys):
    """`neurofl study --help` lists every --ablate axis and every value of each choice axis."""
    from neurofl.ablation import AXES
    from neurofl.models.arch import PAYLOADS, RESETS, SURROGATES
    from neurofl_testing.cli import run_captured

    code, out, _ = run_captured(capsys, "study", "--help")
    assert code == 0
    text = " ".join(out.split())
    for key in AXES:
        assert key in text, key
    for values in (SURROGATES, RESETS, PAYLOADS):
        assert "|".join(values) in text.replace("| ", "|").replace(" |", "|")
