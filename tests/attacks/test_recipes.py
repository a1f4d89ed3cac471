"""Shipped recipes and suites load; bad recipes fail with one line naming the file and key."""

from __future__ import annotations

import pytest

from neurofl.attacks.recipe import AttackRecipe, Suite, check_auxiliary, load_attack, load_recipe
from neurofl.errors import UserError
from neurofl.shipped import shipped_tomls

EXPECTED = {"dlg", "idlg", "inverting_gradients", "inverting_gradients_plain", "spike_ig",
            "adaptive_inverting_gradients", "adaptive_idlg", "detached_ig", "detached_spike_ig", "disaggregation",
            "cocktail_party", "cocktail_party_ica", "learned_inversion", "rgap"}
SUITES = {"suite", "suite_study", "suite_full", "suite_fedavg", "suite_events"}
SMALL = {"suite_fedavg": 3, "suite_events": 2}  # suites of a few attacks for one threat or data kind


def test_every_recipe_and_suite_ships_and_loads():
    shipped = shipped_tomls("attacks")
    assert EXPECTED | SUITES <= set(shipped)
    for name in sorted(set(shipped) - SUITES):
        r = load_recipe(name)
        assert r.name == name and r.steps >= 1
        if isinstance(r, AttackRecipe):
            assert r.adaptive == name.startswith("adaptive_")
    for name in SUITES:
        suite_name, recipes = load_attack(name)
        assert suite_name == name and len(recipes) >= SMALL.get(name, 6)
        assert not any(getattr(r, "labels", None) == "known" for r in recipes)  # the attacker never sees labels


def test_the_quick_suite_caps_iterations_and_applies_overrides():
    _, quick = load_attack("suite")
    _, full = load_attack("suite_full")
    by = {r.name: r for r in quick}
    assert all(r.iterations <= 300 for r in quick if isinstance(r, AttackRecipe))
    assert by["learned_inversion"].epochs == 12 and by["disaggregation"].search_generations == 60
    assert {r.name for r in quick} < {r.name for r in full}
    _, over = load_attack("suite", iterations=7)
    assert all(r.iterations == 7 for r in over if isinstance(r, AttackRecipe))


def test_the_study_suite_is_the_quick_suite_plus_the_papers_ig():
    _, quick = load_attack("suite")
    _, study = load_attack("suite_study")
    by = {r.name: r for r in study}
    assert set(by) == {r.name for r in quick} | {"inverting_gradients_plain"}
    assert all(by[r.name] == r for r in quick)  # the same settings, so the study's cells match `evaluate`'s
    assert by["inverting_gradients_plain"].iterations == 300 and not by["inverting_gradients_plain"].keep_best


def _write(tmp_path, base: str, **changes) -> str:
    lines = [ln for ln in shipped_tomls("attacks")[base].read_text().splitlines()
             if ln.split("=")[0].strip() not in changes]
    lines += [f"{k} = {v}" for k, v in changes.items()]
    path = tmp_path / "r.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "base,changes,needle",
    [
        ("dlg", {"iterations": "-1"}, "'iterations'"),
        ("dlg", {"attack": '"gradinversion"'}, "'attack'"),
        ("cocktail_party", {"attack": "[1, 2]"}, "'attack'"),  # unhashable: found by the fuzzer under CI
        ("dlg", {"attack": "{ a = 1 }"}, "'attack'"),
        ("dlg", {"restart": "2"}, "'restart'"),
        ("dlg", {"init": '"random"'}, "'init'"),
        ("dlg", {"optimizer": '"lbfgs"', "signed_gradients": "true"}, "signed_gradients"),
        ("dlg", {"attack": '"spike_ig"', "init": '"analytic"'}, "'init'"),
        ("dlg", {"backward": '"halfway"'}, "'backward'"),
        ("disaggregation", {"population": "0"}, "'population'"),
        ("disaggregation", {"als_step": "1.5"}, "'als_step'"),
        ("disaggregation", {"iterations": "10"}, "'iterations'"),
        ("cocktail_party", {"restarts": "-2"}, "'restarts'"),
        ("cocktail_party", {"refine": '"learned_inversion"'}, "'refine'"),
        ("cocktail_party", {"refine": '"no_such_recipe"'}, "'refine'"),
        ("learned_inversion", {"epochs": "-3"}, "'epochs'"),
        ("learned_inversion", {"hidden": "0"}, "'hidden'"),
        ("learned_inversion", {"features": '"everything"'}, "'features'"),
        ("learned_inversion", {"auxiliary_samples": "0"}, "'auxiliary_samples'"),
        ("rgap", {"ridge": "-1"}, "'ridge'"),
    ],
)
def test_bad_recipe_names_the_key(tmp_path, base, changes, needle):
    with pytest.raises(UserError) as e:
        load_attack(_write(tmp_path, base, **changes))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "r.toml" in msg


@pytest.mark.parametrize(
    "text,needle",
    [
        ('name = "s"\nrecipes = ["nope"]\n', "'recipes'"),
        ('name = "s"\nrecipes = ["dlg", "dlg"]\n', "twice"),
        ('name = "s"\nrecipes = ["dlg"]\nmax_iterations = 0\n', "'max_iterations'"),
        ('name = "s"\nrecipes = ["dlg"]\n[overrides.idlg]\nlr = 1.0\n', "overrides.idlg"),
        ('name = "s"\nrecipes = ["dlg"]\n[overrides.dlg]\nlr = -1.0\n', "'lr'"),
        ('name = "s"\nrecipes = ["dlg"]\ncolour = 1\n', "'colour'"),
    ],
)
def test_bad_suite_names_the_file_and_key(tmp_path, text, needle):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_attack(path)
    assert needle in str(e.value) and "s.toml" in str(e.value) and "\n" not in str(e.value)


def test_more_auxiliary_data_than_the_split_holds_is_refused():
    _, recipes = load_attack("learned_inversion")
    import dataclasses

    big = [dataclasses.replace(recipes[0], auxiliary_samples=10_000)]
    with pytest.raises(UserError, match="auxiliary_samples"):
        check_auxiliary(big, 269, "digits")
    check_auxiliary(recipes, 269, "digits")


def test_a_suite_is_not_a_recipe(tmp_path):
    with pytest.raises(UserError, match="suite"):
        load_recipe("suite")
    assert Suite("x", ("dlg",)).recipes == ("dlg",)
