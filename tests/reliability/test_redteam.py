"""The fast subset of the red-team pass (tests/support/redteam.py runs all ~780 cases).

The subset's cases (``ci=True`` in tests/support/neurofl_testing/redteam_cases.py: a few of every
category, among them each hostile file the issue reported) run one after the other in one child
process under the same 4 GB address-space limit, each through ``neurofl.cli.run``. Every rule of
tests/support/neurofl_testing/redteam.py applies: no crash or hang, exit 2 with one line naming the
culprit for bad input, exit 0 for valid input, nothing written outside --out, nothing left in a refused --out.
"""

from __future__ import annotations

from neurofl_testing.redteam import run_batch
from neurofl_testing.redteam_cases import build


def test_the_redteam_subset_holds(tmp_path):
    cases = [c for c in build(tmp_path / "work") if c.ci]
    assert len(cases) >= 40 and len({c.category for c in cases}) == 13
    results = run_batch(cases, tmp_path / "work" / "shared")
    assert len(results) == len(cases)
    failed = [f"[{r.category}] {r.name}: {r.failures} (exit {r.code}) {r.stderr_tail[-300:]!r}" for r in results
              if r.failures]  # fmt: skip
    assert not failed, "\n".join(failed)
    assert sum(r.refused for r in results) >= 30  # the hostile ones were refused, not merely survived
