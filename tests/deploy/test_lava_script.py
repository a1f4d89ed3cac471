"""The Lava script docs/deploy.md shows, run verbatim on the shipped files, reproduces neurofl's
SLAYER model bin for bin: nothing that changes results lives only in neurofl's code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import output_spikes, reference_model
from neurofl.deploy.trace import encoded_input

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "netx_models" / "run_in_lava.py"
SAMPLES = 24
# every shipped file: the digits MLPs and the conv SNNs (faces: graded input into a first conv layer)
MANIFEST = json.loads((ROOT / "netx_models" / "manifest.json").read_text())["models"]


def _doc_script() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"<!-- run_in_lava.py -->\n```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/deploy.md must show run_in_lava.py once, after its marker"
    return blocks[0]


def test_doc_shows_the_script_verbatim():
    assert _doc_script() == SCRIPT.read_text()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", [m["file"] for m in MANIFEST])
def test_doc_script_reproduces_slayer_bin_for_bin(name, tmp_path):
    path = ROOT / "netx_models" / name
    nf = read_netx(path)
    seed = int(nf.header["seed"])
    test = split_dataset(load_dataset(nf.header["dataset"]), seed).test
    model = reference_model(nf)
    inputs = encoded_input(model, torch.from_numpy(test.x[:SAMPLES]), seed)
    ref = output_spikes(model, inputs)
    script = tmp_path / "run_in_lava.py"
    script.write_text(_doc_script())
    np.save(tmp_path / "in.npy", inputs.numpy())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")],
        check=True, env=env, timeout=300, capture_output=True,
    )
    out = np.load(tmp_path / "out.npy")
    layers = len(nf.widths) - 1
    assert out.shape == ref.shape
    # bins t < layers are empty in SLAYER by construction (delay_shift); Lava holds the previous sample's tail
    assert np.array_equal(out[..., layers:], ref[..., layers:])
    assert ref[..., layers:].sum() > 100
