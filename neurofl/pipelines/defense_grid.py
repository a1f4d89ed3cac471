"""The defenses of the privacy-utility grid (``neurofl privacy-utility``): which settings each row
changes, and what the server attacks in it.

Two grids. :data:`FIXED_SETTINGS`: one FedSGD schedule at batch 1, each defense at one strength.
:func:`dp_grid_settings`: on a converging schedule, DP-SGD and DP-FedAvg at target epsilons, then
the extra defenses asked for (pruning, secure aggregation, local DP).
"""

from __future__ import annotations

from typing import Any

from neurofl.errors import UserError

# (label, profile, settings): the profile's upload quantization is itself a defense setting.
FIXED_SETTINGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("none", "float32", {"defense": "none"}),
    ("quantization (loihi2 int8)", "loihi2", {"defense": "none"}),
    ("dp sigma=0.01", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.01}),
    ("dp sigma=0.1", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.1}),
    ("prune keep 10%", "float32", {"defense": "prune", "prune_keep": 0.1}),
    ("secagg k=4", "float32", {"defense": "secagg"}),
)

# The fixed grid's server step: 0.5 trains the ANN; the SNN's spike-count logits diverge above ~0.05.
FEDSGD_LR = {"ann": 0.5, "snn": 0.03}

EXTRAS = "prune, secagg, secaggK, dplocal"  # the extra defenses' names, for messages


def dp_grid_settings(
    epsilons: list[float], extras: list[str], clients: int
) -> list[tuple[str, float | None, dict[str, Any]]]:
    """(defense label, target epsilon, settings changed from the converging schedule), in run order:
    the reference row, DP-SGD and DP-FedAvg at each epsilon, then ``extras``.

    ``prune``: keep 10% per tensor; ``secagg`` or ``secaggK``: K clients per round (4 by default),
    the server sees their sum (a K above the schedule's ``clients`` splits the same data over K
    clients); ``dplocal``: each client clips and noises its own update, at each epsilon.

    Raises
    ------
    UserError
        An unknown extra, or secure aggregation of fewer than 2 clients.
    """
    rows: list[tuple[str, float | None, dict[str, Any]]] = [("none", None, {})]
    rows += [("dp sample", e, {"defense": "dp", "dp_level": "sample", "dp_epsilon": e}) for e in epsilons]
    rows += [("dp client", e, {"defense": "dp", "dp_level": "client", "dp_epsilon": e}) for e in epsilons]
    for name in extras:
        if name == "prune":
            rows.append(("prune keep 10%", None, {"defense": "prune", "prune_keep": 0.1}))
        elif name == "dplocal":
            rows += [("dp local", e, {"defense": "dp", "dp_level": "local", "dp_epsilon": e}) for e in epsilons]
        elif name.startswith("secagg") and (name[6:] == "" or name[6:].isdigit()):
            k = int(name[6:] or 4)
            if k < 2:
                raise UserError(f"--extras: {name}: secure aggregation sums at least 2 clients")
            spread = {"fraction": k / clients} if k <= clients else {"clients": k, "fraction": 1.0}
            rows.append((f"secagg k={k}", None, {"defense": "secagg", **spread}))
        else:
            raise UserError(f"--extras: unknown defense {name!r} ({EXTRAS})")
    return rows


def what_is_attacked(label: str, profile: str) -> str:
    """What the server attacks in a row of the DP grid, in words."""
    upload = "int8" if profile != "float32" else "float32, unquantized"
    if label.startswith("secagg"):
        k = label.split("=")[1]
        return f"the round's aggregate over the {k} clients (the server's only view), as one batch of {k} x batch"
    return {
        "none": f"each captured client's upload (FedAvg delta of the local steps, {upload})",
        "dp sample": "each captured client's DP-SGD upload (clipped per sample, noised on the device)",
        "dp client": "each captured client's clipped upload: DP-FedAvg adds its noise at the server, "
                     "so the server itself sees the uploads without noise",
        "dp local": "each captured client's upload, clipped and noised on the device (local DP)",
        "prune keep 10%": "each captured client's pruned upload",
    }[label]  # fmt: skip


def slug(kind: str, label: str, eps: float | None, profile: str) -> str:
    """A DP-grid row's run folder name under ``--work`` (``ann-dp_client-eps4``, ``snn-none-float32``)."""
    name = f"{kind}-{label.replace(' ', '_').replace('%', '').replace('=', '')}" + (f"-eps{eps:g}" if eps else "")
    return name + ("" if profile == "loihi2" else f"-{profile}")
