"""The wheel is what users install: it must carry the shipped profiles and recipes, no test code, and
work with no checkout in sight.

The wheel is built offline (``--no-build-isolation --no-index``, with the venv's setuptools from the
dev extra) from a copy of the sources, so a stale ``build/`` folder in the checkout cannot leak into it,
then installed with ``--no-deps --target``. The installed copy runs in child processes started with
``python -S`` (no ``site``: the editable install's import hook in the venv is never loaded) whose path
is the install target and the venv's site-packages only, from an empty working folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import neurofl

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "neurofl" / "shipped"
# Child processes only; a hang guard, not a speed assertion.
CHILD_TIMEOUT = 1200


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for entry in ROOT.iterdir():  # the project's top-level files (pyproject, README, LICENSE, ...) and the package
        if entry.is_file() and not entry.is_symlink():
            shutil.copy2(entry, src / entry.name)
    shutil.copytree(ROOT / "neurofl", src / "neurofl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    build = subprocess.run([*pip, "wheel", str(src), *offline, "-w", str(dist)], capture_output=True, text=True,
                           timeout=CHILD_TIMEOUT)  # fmt: skip
    assert build.returncode == 0, f"wheel build failed (the dev extra brings setuptools>=77):\n{build.stderr[-3000:]}"
    [wheel] = dist.glob("neurofl-*.whl")
    target = base / "target"
    inst = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)  # fmt: skip
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    return {"wheel": wheel, "target": target, "work": work}


def _child(installed: dict[str, Path], code: str, *args: str) -> subprocess.CompletedProcess:
    """``python -S -c code args`` on the installed copy, from the empty working folder."""
    site = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NEUROFL_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(installed["target"]), *site]), PYTHONNOUSERSITE="1",
               OMP_NUM_THREADS="1", COLUMNS="200", MPLCONFIGDIR=str(installed["work"] / "mpl"))  # fmt: skip
    return subprocess.run([sys.executable, "-S", "-c", code, *args], cwd=installed["work"], env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)  # fmt: skip


# The console script `neurofl`, as the installed distribution declares it.
_ENTRY_POINT = """
import sys
from importlib.metadata import distribution
[ep] = [e for e in distribution("neurofl").entry_points if e.group == "console_scripts" and e.name == "neurofl"]
sys.argv[0] = "neurofl"
sys.exit(ep.load()())
"""


def test_the_wheel_ships_every_profile_and_recipe_and_no_test_code(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    expected = {f"neurofl/shipped/{p.relative_to(SHIPPED).as_posix()}" for p in SHIPPED.rglob("*.toml")}
    assert len(expected) >= 20
    assert {n for n in names if n.endswith(".toml")} == expected
    assert {"neurofl/shipped/profiles/loihi2.toml", "neurofl/shipped/recipes/suite.toml",
            "neurofl/shipped/configs/fl_digits_fedavg.toml"} <= expected
    # every package of the source tree is in the wheel (a folder without __init__.py would be left out)
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "neurofl").rglob("__init__.py")}
    assert packages <= {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert "neurofl/runs/memory.py" in names
    for bad in ("testing/", "neurofl_testing", "redteam", "hostile", "tests/", "conftest"):
        assert not [n for n in names if bad in n], bad
    assert all(n.startswith(("neurofl/", "neurofl-")) for n in names)
    assert f"neurofl-{neurofl.__version__}.dist-info/licenses/LICENSE" in names
    assert installed["wheel"].name.startswith(f"neurofl-{neurofl.__version__}-")


def test_the_installed_copy_is_the_one_imported_and_finds_its_data(installed):
    code = """
import importlib.util, json, os, sys
import neurofl
from neurofl.attacks.recipe import load_attack
from neurofl.profiles import load_profile, shipped_profiles
from neurofl.shipped import shipped_tomls
recipes = shipped_tomls("attacks")
for name in recipes:
    load_attack(name)
for name in shipped_profiles():
    load_profile(name)
from neurofl.config import read_toml
from neurofl.federated import fl_config
from neurofl.shipped import resolve_toml
for name in ("fl_digits_fedavg", "fl_digits_onestep"):
    path = resolve_toml("fl_configs", name, "FL schedule")
    fl_config(dict(read_toml(path)), path)
print(json.dumps({"file": neurofl.__file__, "version": neurofl.__version__, "recipes": sorted(recipes),
                  "profiles": sorted(shipped_profiles()), "path": [os.path.abspath(p) for p in sys.path],
                  "support": importlib.util.find_spec("neurofl_testing") is not None}))
"""
    res = _child(installed, code)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).resolve().is_relative_to(installed["target"].resolve())
    assert got["version"] == neurofl.__version__
    assert got["recipes"] == sorted(p.stem for p in (SHIPPED / "recipes").glob("*.toml"))
    assert got["profiles"] == sorted(p.stem for p in (SHIPPED / "profiles").glob("*.toml"))
    assert not got["support"]  # the test helpers are not reachable
    assert not {str(ROOT), str(ROOT / "tests" / "support")} & set(got["path"])


def test_the_installed_command_lists_the_shipped_profiles(installed):
    res = _child(installed, _ENTRY_POINT, "profiles", "list")
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("loihi2", "float32", "xylo-imu"):
        assert name in res.stdout


def test_a_tiny_evaluate_runs_from_the_installed_copy(installed):
    out = installed["work"] / "run"
    res = _child(installed, _ENTRY_POINT, "evaluate", "--profile", "loihi2", "--victims", "2", "--clients", "2",
                 "--iterations", "3", "--train-epochs", "0", "--attack", "inverting_gradients", "--workers", "1",
                 "--device", "cpu", "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["neurofl_version"] == neurofl.__version__
    assert (report["profiles"], report["attack"], report["victims"]) == (["loihi2"], "inverting_gradients", 2)
