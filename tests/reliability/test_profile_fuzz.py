"""Hostile profile files: any mutation of a real profile either loads or fails with one UserError line."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.errors import UserError
from neurofl.profiles import HardwareProfile, load_profile

REAL = (Path(__file__).resolve().parents[2] / "hardware_profiles" / "loihi2.toml").read_bytes()
CASES = 300

mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, len(REAL))),
    st.tuples(st.just("flip"), st.integers(0, len(REAL) - 1), st.integers(1, 255)),
    st.tuples(st.just("drop_line"), st.integers(0, REAL.count(b"\n"))),
    st.tuples(
        st.just("replace_value"),
        st.integers(0, REAL.count(b"\n")),
        st.sampled_from([b"-1", b"0", b"1e309", b"nan", b"inf", b'"x"', b"true", b"[1, 2]", b"99999999999999999999"]),
    ),
)


def _mutate(m: tuple) -> bytes:
    if m[0] == "truncate":
        return REAL[: m[1]]
    if m[0] == "flip":
        b = bytearray(REAL)
        b[m[1]] ^= m[2]
        return bytes(b)
    lines = REAL.split(b"\n")
    i = m[1] % len(lines)
    if m[0] == "drop_line":
        return b"\n".join(lines[:i] + lines[i + 1 :])
    if b"=" in lines[i]:
        lines[i] = lines[i].split(b"=")[0] + b"= " + m[2]
    return b"\n".join(lines)


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation)
def test_mutated_profile_loads_or_raises_one_line_user_error(tmp_path, m):
    path = tmp_path / "p.toml"
    path.write_bytes(_mutate(m))
    try:
        p = load_profile(path)
    except UserError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg
        return
    assert isinstance(p, HardwareProfile)
    assert p.simulation.time_steps >= 1 and 1 <= p.weights.bits <= 32 and p.update.bits >= 2
