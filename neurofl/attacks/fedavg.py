"""A client's FedAvg local training, unrolled and differentiable, for many victims at once.

The attacker simulates the victim's ``steps`` local SGD steps inside its objective (Geiping et
al. 2020, section 5; with a fresh minibatch per step, as Dimitrov et al. 2022 simulate a client's
local epoch over the reconstructed data). After the first step every victim has its own weights, so
the model is run functionally with per-victim weight tensors (``torch.func.vmap`` cannot run through SLAYER's
neurons); victims never interact, so the gradient of the summed loss w.r.t. victim v's weights is
victim v's own gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neurofl.errors import UserError


def functional_logits(
    model: torch.nn.Module, weights: list[torch.Tensor], x: torch.Tensor, batch: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The model's logits with per-victim weights.

    weights : one (victims, *weight_shape) tensor per entry of ``model.weight_layers()``
    x : (victims * batch, *input_shape) -> logits (victims * batch, classes)
    """
    from neurofl.models.ann import MLP
    from neurofl.models.snn import SpikingMLP

    victims = weights[0].shape[0]
    if isinstance(model, MLP):
        h = x.reshape(victims, batch, -1)
        for i, w in enumerate(weights):
            h = torch.einsum("vbi,voi->vbo", h, w.reshape(victims, w.shape[1], -1))
            if i < len(weights) - 1:
                h = torch.sigmoid(h)
        return h.reshape(victims * batch, -1)
    if isinstance(model, SpikingMLP):
        from lava.lib.dl.slayer.block.base import step_delay

        s = model.input_spikes(x, generator)  # (n, in, T), as the device receives it
        for block, w in zip(model.blocks, weights, strict=True):
            q = block.synapse._pre_hook_fx(w) if block.synapse._pre_hook_fx is not None else w
            q = q.reshape(victims, q.shape[1], -1)
            z = torch.einsum("voi,vbit->vbot", q, s.reshape(victims, batch, *s.shape[1:]))
            z = _forward_hooks(block.synapse, s, z.reshape(victims * batch, *z.shape[2:]))
            s = block.neuron(z)
            if block.delay_shift:
                s = step_delay(block, s)
        return s.sum(-1)
    raise UserError(f"unrolled FedAvg local training is implemented for MLP and SpikingMLP, not {type(model).__name__}")


def _forward_hooks(module: torch.nn.Module, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Apply ``module``'s registered forward hooks to an output computed outside it (a model may
    post-process a layer's output with one, e.g. the chip's input-current rounding)."""
    for hook in module._forward_hooks.values():
        result = hook(module, (inp,), out)
        if result is not None:
            out = result
    return out


def minibatch_problem(batch: int, steps: int, minibatch: int | None) -> str | None:
    """Why ``steps`` local steps of ``minibatch`` samples cannot walk a batch of ``batch`` (None:
    they can): a minibatch must divide the batch, and the steps must use every sample of it.

    >>> minibatch_problem(40, 5, 8) is None, minibatch_problem(16, 1, 8)[:28]
    (True, 'must divide --batch-size 16 ')
    """
    if minibatch is None or (minibatch >= 1 and batch % minibatch == 0 and steps * minibatch >= batch):
        return None
    return (f"must divide --batch-size {batch} and, over --local-steps {steps}, use every sample of it "
            "(local steps x minibatch >= batch size)")


def local_update(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    steps: int,
    lr: float,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
    minibatch: int | None = None,
) -> dict[str, torch.Tensor]:
    """Each victim's weight delta after ``steps`` SGD steps of learning rate ``lr``.

    x : (victims * batch, *input_shape); y : (victims * batch,) labels or (victims * batch,
    classes) probabilities. ``minibatch`` : samples per step (None: the whole batch every step).
    With ``minibatch`` m < ``batch`` the victim walks its batch in order, step k on samples
    ``[j m, (j + 1) m)`` with j = k mod (batch / m): ``steps = batch / m`` is one local epoch, each
    sample used once. The order is the client's; an attacker reconstructs an unordered set and is
    scored on the best assignment, so any order of its own candidates is as good.
    Returns name -> (victims, *weight_shape): ``w_steps - w_0``.
    """
    m = batch if minibatch is None else minibatch
    if not 1 <= m <= batch or batch % m:
        raise ValueError(f"minibatch {m} must divide the batch {batch}")
    layers = model.weight_layers()
    victims = x.shape[0] // batch
    xs = x.reshape(victims, batch // m, m, *x.shape[1:])
    ys = y.reshape(victims, batch // m, m, *y.shape[1:])
    w0 = [w.weight.detach().unsqueeze(0).expand(victims, *w.weight.shape) for _, w in layers]
    ws = [w.clone().requires_grad_(True) for w in w0]
    for k in range(steps):
        j = k % (batch // m)
        xk, yk = xs[:, j].reshape(victims * m, *x.shape[1:]), ys[:, j].reshape(victims * m, *y.shape[1:])
        logits = functional_logits(model, ws, xk, m, generator)
        if yk.dim() == 1:
            per = F.cross_entropy(logits, yk, reduction="none")
        else:
            per = -(yk * F.log_softmax(logits, dim=-1)).sum(-1)
        loss = per.reshape(victims, m).mean(1).sum()
        grads = torch.autograd.grad(loss, ws, create_graph=create_graph)
        ws = [w - lr * g for w, g in zip(ws, grads, strict=True)]
    return {name: w - w_start for (name, _), w, w_start in zip(layers, ws, w0, strict=True)}
