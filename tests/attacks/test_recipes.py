"""Shipped recipes load; bad recipes fail with one line naming the key."""

from __future__ import annotations

import pytest

from neurofl.attacks import load_recipe
from neurofl.errors import UserError
from neurofl.resources import shipped_tomls

EXPECTED = {"dlg", "idlg", "inverting_gradients", "inverting_gradients_plain", "spike_ig",
            "adaptive_inverting_gradients", "adaptive_idlg"}


def test_every_issue_recipe_ships_and_loads():
    shipped = shipped_tomls("attacks")
    assert EXPECTED <= set(shipped)
    for name in shipped:
        r = load_recipe(name)
        assert r.name == name
        assert r.adaptive == name.startswith("adaptive_")


def _write(tmp_path, **changes) -> str:
    base = shipped_tomls("attacks")["dlg"].read_text().splitlines()
    lines = [ln for ln in base if ln.split("=")[0].strip() not in changes]
    lines += [f"{k} = {v}" for k, v in changes.items()]
    path = tmp_path / "r.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"iterations": "-1"}, "'iterations'"),
        ({"attack": '"gradinversion"'}, "'attack'"),
        ({"restart": "2"}, "'restart'"),
        ({"init": '"random"'}, "'init'"),
        ({"optimizer": '"lbfgs"', "signed_gradients": "true"}, "signed_gradients"),
        ({"attack": '"spike_ig"', "init": '"analytic"'}, "'init'"),
    ],
)
def test_bad_recipe_names_the_key(tmp_path, changes, needle):
    with pytest.raises(UserError) as e:
        load_recipe(_write(tmp_path, **changes))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "r.toml" in msg
