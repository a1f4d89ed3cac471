"""Run a neurofl NetX file in Lava fixed point: python run_in_lava.py MODEL.net IN.npy OUT.npy
IN: (samples, inputs, steps) encoded input; OUT: (samples, outputs, steps) output spikes."""
import json
import sys

import h5py
import numpy as np
from lava.lib.dl.netx.hdf5 import Network
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

net_file, x = sys.argv[1], np.load(sys.argv[2])
with h5py.File(net_file, "r") as f:  # what Lava needs beyond the layers
    lava = json.loads(f["neurofl"].attrs["header"])["lava"]
n, width, steps = x.shape
# reset every sample; offset 1: the input and the first synapse each delay spikes by one step
net = Network(net_config=net_file, input_message_bits=lava["input_message_bits"],
              reset_interval=steps, reset_offset=1)
syn = net.layers[0].synapse  # graded payloads carry input_frac_bits fraction bits: shift them out
syn.proc_params.overwrite("weight_exp", syn.proc_params["weight_exp"] - lava["input_frac_bits"])
data = np.zeros((width, n * steps + len(net.layers) + 1), dtype=np.int32)
data[:, : n * steps] = np.round(x * 2 ** lava["input_frac_bits"]).transpose(1, 0, 2).reshape(width, -1)
source, sink = Source(data=data), Sink(shape=net.out.shape, buffer=data.shape[1])
source.s_out.connect(net.inp)
net.out.connect(sink.a_in)
try:
    net.run(condition=RunSteps(num_steps=data.shape[1]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    out = sink.data.get()
finally:
    net.stop()
np.save(sys.argv[3], out[:, : n * steps].reshape(-1, n, steps).transpose(1, 0, 2))
