"""A run's persistent state in ``--out``: checkpoint (resume), ``history.json``, ``accuracy.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from neurofl.errors import UserError
from neurofl.federated.files import write_bytes, write_json, write_torch

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
PLOT = "accuracy.png"
# Settings a resumed run may change: they do not alter the rounds already trained.
RESUMABLE = {"rounds", "capture_rounds", "capture_clients"}


def load_checkpoint(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The last completed round's state, or None for a fresh run.

    Returns {"round": int, "weights": name -> tensor, "rows": [per-round dicts]}.

    Raises
    ------
    UserError
        ``out`` holds a run with different settings, or an unreadable checkpoint.
    """
    path = Path(out) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to remove
        raise UserError(
            f"{path}: unreadable checkpoint ({type(e).__name__}); remove it to start over"
        ) from None
    saved = state.get("identity", {}) if isinstance(state, dict) else {}
    for key in sorted(set(identity) | set(saved)):
        if key not in RESUMABLE and saved.get(key) != identity.get(key):
            raise UserError(
                f"{out}: holds a run with {key} = {saved.get(key)!r}, not {identity.get(key)!r}; "
                "use another --out (or the same settings to resume)"
            )
    return state


def save_checkpoint(out: Path, identity: dict[str, Any], round_: int, weights: dict, rows: list) -> None:
    write_torch(
        Path(out) / CHECKPOINT, {"identity": identity, "round": round_, "weights": weights, "rows": rows}
    )


def write_history(out: Path, identity: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``history.json``: the run's settings and one row per evaluated round (round 0 = initial model)."""
    write_json(Path(out) / HISTORY, {"settings": identity, "rounds": rows})


def plot_accuracy(out: Path, rows: list[dict[str, Any]], title: str) -> None:
    """``accuracy.png``: test accuracy and loss of the global model per round."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    rounds = [r["round"] for r in rows]
    ax.plot(rounds, [r["accuracy"] for r in rows], marker="o", label="test accuracy")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax2 = ax.twinx()
    ax2.plot(rounds, [r["loss"] for r in rows], color="tab:red", alpha=0.6, label="test loss")
    ax2.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(Path(out) / PLOT, buf.getvalue())
