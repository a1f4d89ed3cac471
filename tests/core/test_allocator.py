"""The allocator policy: a freed block is reused without its pages faulting in again (glibc), and
every command runs under it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from neurofl.errors import UserError
from neurofl.runs import allocator

PROBE = """
import json, resource, sys
import torch
from neurofl.runs.allocator import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "keep" else False
n = 64 * 2**20 // 4  # a 64 MiB tensor, above glibc's largest mmap threshold

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(n)  # every page written
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) * 1024

counts = [faults() for _ in range(12)]
held = rss()
from neurofl.runs.allocator import release_freed_memory
released = release_freed_memory()
print(json.dumps({"kept": kept, "faults": counts, "released": released, "freed": held - rss()}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not allocator.on_glibc(), reason="the policy is glibc's")
def test_a_freed_block_is_reused_without_faulting_again():
    plain, keep = _probe("plain"), _probe("keep")
    assert keep["kept"] and not plain["kept"]
    pages = 64 * 2**20 // 4096
    # the first allocation faults its pages in either way (transparent huge pages may make that fewer)
    assert keep["faults"][0] > 0 and plain["faults"][0] > 0
    # plain glibc unmapped the block, so its pages fault in again every time
    assert all(f >= plain["faults"][0] // 2 for f in plain["faults"])
    # kept, the heap reuses them once it has grown past the small blocks allocated beside the first
    # few (glibc 2.36 measured: 6 rounds)
    assert all(f < pages // 100 for f in keep["faults"][-4:])
    # what the kept heap holds goes back to the kernel on request (a study worker's, after each task)
    assert keep["released"] and keep["freed"] >= 64 * 2**20


ENTRY = """
import json, sys
from neurofl.runs import allocator

calls = []
keep = allocator.keep_freed_memory
allocator.keep_freed_memory = lambda *a: calls.append(1) or keep(*a)
from neurofl.cli import main, run

assert run(["profiles", "list"]) == 0  # in-process (a test, a notebook): the process's policy is left alone
seen = len(calls)
sys.argv = ["neurofl", "profiles", "list"]
try:
    main()  # the process's entry point
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps({"in_process": seen, "entry": len(calls) - seen}))
"""


def test_the_entry_point_sets_it_and_an_in_process_call_does_not():
    out = subprocess.run([sys.executable, "-c", ENTRY], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"in_process": 0, "entry": 1}


def test_a_bad_switch_stops_the_command_with_one_line():
    env = {**os.environ, "NEUROFL_KEEP_FREED_MEMORY": "yes"}
    out = subprocess.run([sys.executable, "-m", "neurofl", "profiles", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == ("error: NEUROFL_KEEP_FREED_MEMORY='yes': expected 0 (glibc's defaults) "
                                  "or 1 (keep freed memory)")  # fmt: skip


def test_the_switch_is_refused_unless_0_or_1():
    with pytest.raises(UserError, match="NEUROFL_KEEP_FREED_MEMORY='yes'"):
        allocator.keep_freed_memory({"NEUROFL_KEEP_FREED_MEMORY": "yes"})
    assert allocator.keep_freed_memory({"NEUROFL_KEEP_FREED_MEMORY": "0"}) is False
