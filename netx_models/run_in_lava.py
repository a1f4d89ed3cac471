"""Run a neurofl NetX file in Lava fixed point: python run_in_lava.py MODEL.net IN.npy OUT.npy
IN: (samples, inputs, steps) encoded input, inputs in (C, H, W) order; OUT: (samples, outputs, steps)."""
import json
import sys

import h5py
import numpy as np
from lava.lib.dl.netx.hdf5 import Network
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source


class ConvModel(PyConvModelFixed):  # Lava's fixed-point Conv, plus the weight_exp it ignores
    def clamp_precision(self, a):
        e = int(np.asarray(self.weight_exp).reshape(-1)[0])
        return super().clamp_precision(a << e if e >= 0 else a >> -e)


net_file, x = sys.argv[1], np.load(sys.argv[2])
with h5py.File(net_file, "r") as f:  # what Lava needs beyond the layers
    lava = json.loads(f["neurofl"].attrs["header"])["lava"]
n, steps = x.shape[0], x.shape[-1]
# reset every sample; offset 1: the input and the first synapse each delay spikes by one step
net = Network(net_config=net_file, input_message_bits=lava["input_message_bits"],
              reset_interval=steps, reset_offset=1)
syn = net.layers[0].synapse  # graded payloads carry input_frac_bits fraction bits: shift them out
if isinstance(syn, Conv):  # conv keeps its exponent in a Var (applied by ConvModel)
    syn.weight_exp.init = np.array([-lava["input_frac_bits"]])
else:
    syn.proc_params.overwrite("weight_exp", syn.proc_params["weight_exp"] - lava["input_frac_bits"])
shape = net.inp.shape  # (inputs,) for a dense first layer, (W, H, C) for a conv one
x = np.round(x * 2 ** lava["input_frac_bits"]).reshape(n, *shape[::-1], steps)  # (n, [C, H, W,] steps)
x = x.transpose(*range(x.ndim - 2, 0, -1), 0, x.ndim - 1).reshape(*shape, -1)  # NetX's (W, H, C) order
data = np.zeros((*shape, n * steps + len(net.layers) + 1), dtype=np.int32)
data[..., : n * steps] = x
source, sink = Source(data=data), Sink(shape=net.out.shape, buffer=data.shape[-1])
source.s_out.connect(net.inp)
net.out.connect(sink.a_in)
try:
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Conv: ConvModel})
    net.run(condition=RunSteps(num_steps=data.shape[-1]), run_cfg=cfg)
    out = sink.data.get()
finally:
    net.stop()
np.save(sys.argv[3], out[:, : n * steps].reshape(-1, n, steps).transpose(1, 0, 2))
