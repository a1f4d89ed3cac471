"""Hostile attack recipes: any mutation of the shipped recipes loads a valid recipe or fails with
one UserError line naming the file, and `neurofl attack` exits 2 on one."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.attacks.recipe import AttackRecipe, load_attack
from neurofl.cli import run

from .conftest import byte_mutation, check_reader, mutate_bytes

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "attacks").glob("*.toml"))
REAL = {p.name: p.read_bytes() for p in SHIPPED}
VALUES = [b"-1", b"0", b"1e309", b"nan", b"inf", b'"x"', b"true", b"[1, 2]", b"99999999999999999999", b"{}", b'"lbfgs"']


def _replace_value(data: bytes, line: int, value: bytes) -> bytes:
    lines = data.split(b"\n")
    i = line % len(lines)
    if b"=" in lines[i]:
        lines[i] = lines[i].split(b"=")[0] + b"= " + value
    return b"\n".join(lines)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(sorted(REAL)),
    st.one_of(
        st.tuples(st.just("value"), st.integers(0, 200), st.sampled_from(VALUES)),
        st.tuples(st.just("drop"), st.integers(0, 200)),
        st.tuples(st.just("bytes"), byte_mutation(2000)),
    ),
)
def test_mutated_recipe_loads_or_raises_one_line_user_error(tmp_path, name, m):
    real = REAL[name]
    if m[0] == "value":
        data = _replace_value(real, m[1], m[2])
    elif m[0] == "drop":
        lines = real.split(b"\n")
        data = b"\n".join(lines[: m[1] % len(lines)] + lines[m[1] % len(lines) + 1 :])
    else:
        b = m[1]
        data = mutate_bytes(real, (b[0], min(b[1], len(real) - 1), *b[2:]))
    path = tmp_path / "r.toml"
    path.write_bytes(data)
    loaded = check_reader("attack recipe TOML", lambda: load_attack(path), path)
    for r in loaded[1] if loaded is not None else []:
        assert r.steps >= 1
        if isinstance(r, AttackRecipe):
            assert r.iterations >= 1 and r.restarts >= 1
            assert math.isfinite(r.lr) and r.lr > 0 and math.isfinite(r.tv_weight)


def test_attack_cli_exits_2_on_a_bad_recipe(tmp_path, capsys):
    path = tmp_path / "r.toml"
    path.write_bytes(
        _replace_value(
            REAL["dlg.toml"],
            REAL["dlg.toml"]
            .split(b"\n")
            .index(next(line for line in REAL["dlg.toml"].split(b"\n") if line.startswith(b"lr "))),
            b"nan",
        )
    )
    assert run(["attack", "--recipe", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(path) in err
