"""scripts/bench_gradients.py: its textbook per-sample build is an independent reference that the
library's grouped build equals (checked by every case before it is timed), and a case reports both
builds' seconds and their ratio."""

from __future__ import annotations

import pytest

from neurofl.models.arch import Architecture
from neurofl.models.conv import ConvArchitecture


@pytest.mark.parametrize("arch", [Architecture((16,), classes=3, hidden=(8,)), ConvArchitecture((1, 8, 8), classes=3)],
                         ids=["mlp", "conv"])  # fmt: skip
@pytest.mark.parametrize("second_order", [False, True])
def test_a_case_checks_the_builds_equal_and_times_both(load_script, arch, second_order):
    bench = load_script("bench_gradients")
    out = bench.case("tiny", arch, 8, 4, second_order, repeats=1)
    assert set(out["median_seconds"]) == {"per_sample", "grouped"}
    assert out["ratio_per_sample_over_grouped"] > 0


def test_a_wrong_build_is_caught_by_the_check(load_script, monkeypatch):
    bench = load_script("bench_gradients")
    monkeypatch.setattr(bench, "grouped_weight", lambda m, a, g, group: 2 * bench.per_sample_weight(m, a, g, group))
    with pytest.raises(AssertionError):
        bench.case("tiny", ConvArchitecture((1, 8, 8), classes=3), 8, 4, False, repeats=1)
