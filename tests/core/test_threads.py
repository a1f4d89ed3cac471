"""The thread policy: --threads, then NEUROFL_THREADS, then OMP_NUM_THREADS, then one thread."""

from __future__ import annotations

import pytest
import torch

from neurofl.cli import run
from neurofl.errors import UserError
from neurofl.runs.threads import DEFAULT_THREADS, apply_thread_policy, thread_count


def test_precedence() -> None:
    assert thread_count(None, {}) == DEFAULT_THREADS == 1
    assert thread_count(None, {"NEUROFL_THREADS": "3", "OMP_NUM_THREADS": "2"}) == 3
    assert thread_count(None, {"OMP_NUM_THREADS": "2"}) is None  # torch already follows it
    assert thread_count(2, {"NEUROFL_THREADS": "3"}) == 2


@pytest.mark.parametrize("option, env", [(0, {}), (-1, {}), (None, {"NEUROFL_THREADS": "many"}),
                                         (None, {"NEUROFL_THREADS": "0"})])  # fmt: skip
def test_bad_values_refused(option, env) -> None:
    with pytest.raises(UserError):
        thread_count(option, env)


def test_cli_sets_torch_threads_and_refuses_bad_values(capsys) -> None:
    before = torch.get_num_threads()
    try:
        assert run(["--threads", "2", "profiles", "list"]) == 0
        assert torch.get_num_threads() == 2
        assert apply_thread_policy(1) == 1
        capsys.readouterr()
        assert run(["--threads", "0", "profiles", "list"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--threads=0" in err[0]
    finally:
        torch.set_num_threads(before)
