"""The red-team pass: hostile inputs and misuses run through the real CLI, and what must hold.

Each :class:`Case` is one ``neurofl`` command line over crafted files (checkpoints, captures, NetX,
IDX/.gz, CIFAR pickles, event files, TOML) or a misuse of the options. A case passes when

* the process neither crashes (a signal: SIGSEGV, SIGABRT, the kernel's OOM kill) nor hangs
  (a generous timeout, a hang guard only) nor reports an internal error (exit 1);
* a bad input exits 2 with exactly one stderr line, ``error: ...``, naming what is wrong (the
  case's ``needle``); a valid one exits 0 (``either``: whichever, under the same rules);
* nothing is written outside the run's ``--out`` (the case's folder and the shared inputs are
  compared before and after; the working directory stays empty);
* a refused run leaves nothing under its ``--out`` (absent before: absent after).

:func:`run_subprocess` runs one case as its own process under a memory limit (``RLIMIT_AS``);
:func:`run_batch` runs many in one child process (one lava import; what the CI subset uses).
``tests/support/redteam.py`` runs every case and writes ``results/redteam.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 4 << 30  # RLIMIT_AS of every case's process
HANG_GUARD = 600  # seconds; only a case that never ends reaches it
CRASH_CODES = {139, 134, 137, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGKILL, -signal.SIGBUS}


@dataclass
class Case:
    """One command line and what it must give.

    category : what is attacked (``checkpoint``, ``netx``, ``captures``, ``idx``, ``cifar``,
        ``events``, ``toml``, ``cli``)
    argv : the arguments after ``neurofl``
    expect : ``refuse`` (exit 2, one line), ``ok`` (exit 0) or ``either``
    folder : the case's own folder (its hostile inputs; compared before and after)
    out : the run's ``--out`` (may be written; must not exist after a refusal if absent before)
    needle : text the error line must contain (the file, key or option at fault)
    ci : part of the fast subset the test suite runs
    memory : address-space limit of this case, when it must differ from :data:`MEMORY_LIMIT`
        (Lava's CPU runtime, which a valid ``verify`` starts, needs ~5 GB of address space and
        hangs, never returning, when one of its processes cannot allocate)
    """

    category: str
    name: str
    argv: list[str]
    expect: str
    folder: Path
    out: Path | None = None
    needle: str | None = None
    ci: bool = False
    memory: int | None = None


@dataclass
class Result:
    """What one case gave, and every rule it broke (``failures`` empty: it passed)."""

    category: str
    name: str
    expect: str
    code: int | None
    stderr_tail: str
    seconds: float
    failures: list[str] = field(default_factory=list)
    # peak resident memory in MiB: of the case's own process (run_subprocess), or the batch child's
    # high-water mark once the case ended (run_batch; ``rss_growth_mb`` what this case added to it)
    peak_rss_mb: float | None = None
    rss_growth_mb: float | None = None

    @property
    def refused(self) -> bool:
        return self.code == 2


# -- snapshots: what a case may not change ---------------------------------------------------------


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int, str]]:
    """Every entry under ``root`` (not following links) but ``skip``: path -> (size, mtime, kind)."""
    out: dict[str, tuple[int, int, str]] = {}
    if not root.exists():
        return out
    skip_s = str(skip) if skip is not None else None
    for folder, dirs, files in os.walk(root):
        if skip_s is not None and (folder == skip_s or folder.startswith(skip_s + os.sep)):
            dirs[:] = []
            continue
        for name in dirs + files:
            p = os.path.join(folder, name)
            if skip_s is not None and (p == skip_s or p.startswith(skip_s + os.sep)):
                continue
            st = os.lstat(p)
            kind = "dir" if name in dirs else "file"
            out[p] = (0 if kind == "dir" else st.st_size, 0 if kind == "dir" else st.st_mtime_ns, kind)
    return out


def _diff(before: dict, after: dict) -> list[str]:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return changed[:5]


# -- checking --------------------------------------------------------------------------------------


def check(case: Case, code: int | None, stderr: str, out_before: bool, changed: list[str], cwd_left: list[str],
          out_left: bool) -> list[str]:  # fmt: skip
    """Every rule ``case`` broke, given what its run did."""
    failures = []
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if code is None:
        return ["hang: no exit within the hang guard"]
    if code in CRASH_CODES or code < 0:
        failures.append(f"crash: exit {code}")
    if code == 1 or any(ln.startswith("internal error") for ln in lines):
        failures.append("internal error (exit 1)")
    if "Traceback" in stderr:
        failures.append("traceback on stderr")
    if code == 2 or case.expect == "refuse":
        if code != 2:
            failures.append(f"not refused: exit {code}")
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            failures.append(f"not one error line ({len(lines)} lines)")
        elif case.needle is not None and case.needle not in lines[0]:
            failures.append(f"the error line does not name {case.needle!r}")
    if case.expect == "ok" and code != 0:
        failures.append(f"valid input not accepted: exit {code}")
    if code not in (0, 2, 130) and not failures:
        failures.append(f"unexpected exit {code}")
    if changed:
        failures.append(f"wrote outside --out: {changed}")
    if cwd_left:
        failures.append(f"wrote into the working directory: {cwd_left[:3]}")
    if code != 0 and not out_before and out_left:
        failures.append("a refused run left its --out behind")
    return failures


def _env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROFL_DATA", "NEUROFL_DEBUG", "PYTHONWARNINGS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLCONFIGDIR=str(workspace.parent / "mpl"))
    return env


def _limit_memory(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return preexec


@contextlib.contextmanager
def _watch(case: Case, shared: Path) -> Iterator[dict[str, Any]]:
    cwd = case.folder / "cwd"
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    state: dict[str, Any] = {"cwd": cwd, "out_before": case.out is not None and os.path.lexists(case.out)}
    before = {**snapshot(case.folder, skip=case.out), **snapshot(shared)}
    yield state
    after = {**snapshot(case.folder, skip=case.out), **snapshot(shared)}
    state["changed"] = _diff(before, after)
    state["cwd_left"] = sorted(os.listdir(cwd))
    state["out_left"] = case.out is not None and os.path.lexists(case.out)


def run_subprocess(case: Case, shared: Path, python: str = sys.executable, memory: int = MEMORY_LIMIT,
                   timeout: float = HANG_GUARD) -> Result:  # fmt: skip
    """Run ``case`` as ``python -m neurofl ...`` in its own process group under ``memory`` (or the
    case's own limit); its peak RSS is the kernel's account of that process (``wait4``)."""
    import threading

    memory = case.memory or memory
    t0 = time.monotonic()
    with _watch(case, shared) as st:
        proc = subprocess.Popen(
            [python, "-m", "neurofl", *case.argv], cwd=st["cwd"], env=_env(shared), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limit_memory(memory), start_new_session=True,
        )  # fmt: skip
        assert proc.stderr is not None
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        code: int | None = None
        rss_kb = 0
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code, rss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                proc.returncode = code  # reaped here: Popen must not wait again
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode, rss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                break
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (Ray)
        reader.join(30)
    text = b"".join(chunks).decode("utf-8", "replace")
    failures = check(case, code, text, st["out_before"], st["changed"], st["cwd_left"], st["out_left"])
    return Result(case.category, case.name, case.expect, code, text[-600:], time.monotonic() - t0, failures,
                  round(rss_kb / 1024, 1))  # fmt: skip


# -- the batch child: many cases in one process (one lava import) ------------------------------------

_SERVE = """
import contextlib, io, json, os, resource, sys
from neurofl.cli import run
reply = sys.stdout
for line in sys.stdin:
    job = json.loads(line)
    os.chdir(job["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(job["argv"])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"code": code, "stderr": err.getvalue(), "rss_kb": rss}), file=reply, flush=True)
"""


def run_batch(cases: list[Case], shared: Path, python: str = sys.executable, memory: int = MEMORY_LIMIT,
              timeout: float = HANG_GUARD,
              own_process: Callable[[Case], bool] | None = None) -> list[Result]:  # fmt: skip
    """Run ``cases`` one after the other in one child process (under ``memory``), each in-process
    through ``neurofl.cli.run``. A crash or hang of the child fails the case it was running, and a
    fresh child takes the cases after it. Cases with their own memory limit, and those
    ``own_process`` picks (e.g. every ``verify``: Lava's runtime forks, and a fork of a process
    that already ran torch's threads can deadlock), run as their own process
    (:func:`run_subprocess`), first."""
    alone = [c for c in cases if c.memory or (own_process is not None and own_process(c))]
    results: list[Result] = [run_subprocess(c, shared, python, memory, timeout) for c in alone]
    todo = [c for c in cases if c not in alone]
    while todo:
        done = _batch_child(todo, shared, python, memory, timeout, results)
        todo = todo[done:]
    return results


def _batch_child(cases: list[Case], shared: Path, python: str, memory: int, timeout: float,
                 results: list[Result]) -> int:  # fmt: skip
    """Run ``cases`` in one child until it dies; append their results; return how many ran."""
    proc = subprocess.Popen(
        [python, "-c", _SERVE], env=_env(shared), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, preexec_fn=_limit_memory(memory), start_new_session=True, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    rss_before = 0.0
    ran = 0
    try:
        for case in cases:
            t0 = time.monotonic()
            ran += 1
            with _watch(case, shared) as st:
                try:
                    proc.stdin.write(json.dumps({"argv": case.argv, "cwd": str(st["cwd"])}) + "\n")
                    proc.stdin.flush()
                    reply = _readline(proc, timeout)
                except BrokenPipeError:
                    reply = None
            if reply is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
                why = "hang" if time.monotonic() - t0 >= timeout else f"crash: the batch child died (exit {code})"
                res = Result(case.category, case.name, case.expect, None if why == "hang" else code, "",
                             time.monotonic() - t0, [why])  # fmt: skip
                results.append(res)
                break
            r = json.loads(reply)
            failures = check(case, r["code"], r["stderr"], st["out_before"], st["changed"], st["cwd_left"],
                             st["out_left"])  # fmt: skip
            rss = r.get("rss_kb", 0) / 1024
            growth = round(rss - rss_before, 1)
            results.append(Result(case.category, case.name, case.expect, r["code"], r["stderr"][-600:],
                                  time.monotonic() - t0, failures, round(rss, 1), growth))  # fmt: skip
            rss_before = rss
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return ran


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        return None
    line = proc.stdout.readline()
    return line or None


def summarize(results: list[Result], seconds: float) -> dict[str, Any]:
    """Counts per category (tried, refused with exit 2, accepted with exit 0, failed), the kinds of
    failure (exit 1, crash, hang, other rule broken), the peak RSS of the worst case, and failures."""
    cats: dict[str, dict[str, int]] = {}
    for r in results:
        c = cats.setdefault(r.category, {"tried": 0, "refused": 0, "accepted": 0, "failed": 0})
        c["tried"] += 1
        c["refused"] += r.code == 2
        c["accepted"] += r.code == 0
        c["failed"] += bool(r.failures)
    own = [r for r in results if r.peak_rss_mb is not None and r.rss_growth_mb is None]
    grew = [r for r in results if r.rss_growth_mb is not None]
    worst_own = max(own, key=lambda r: r.peak_rss_mb or 0.0, default=None)
    worst_growth = max(grew, key=lambda r: r.rss_growth_mb or 0.0, default=None)
    return {
        "cases": len(results),
        "refused": sum(r.code == 2 for r in results),
        "accepted": sum(r.code == 0 for r in results),
        "exit_1": sum(r.code == 1 for r in results),
        "crash": sum(any(f.startswith("crash") for f in r.failures) for r in results),
        "hang": sum(any(f.startswith("hang") for f in r.failures) for r in results),
        "failed": sum(bool(r.failures) for r in results),
        "seconds": round(seconds, 1),
        "memory_limit_bytes": MEMORY_LIMIT,
        "peak_rss": {
            "own_process_worst": None if worst_own is None else
            {"case": f"[{worst_own.category}] {worst_own.name}", "mb": worst_own.peak_rss_mb},
            "batch_child_high_water_mb": max((r.peak_rss_mb or 0.0 for r in grew), default=None),
            "largest_growth_in_a_batch_child": None if worst_growth is None else
            {"case": f"[{worst_growth.category}] {worst_growth.name}", "mb": worst_growth.rss_growth_mb,
             "high_water_mb": worst_growth.peak_rss_mb},
        },  # fmt: skip
        "by_category": cats,
        "failures": [asdict(r) for r in results if r.failures],
    }
