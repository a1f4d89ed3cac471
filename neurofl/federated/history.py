"""A run's persistent state in ``--out``: checkpoint (resume), ``history.json``, ``accuracy.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurofl.errors import UserError
from neurofl.federated.files import write_bytes, write_json, write_torch

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
PLOT = "accuracy.png"
# Settings a resumed run may change: they do not alter the rounds already trained.
RESUMABLE = {"rounds", "capture_rounds", "capture_clients"}


def _check_state(state: Any, path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The checkpoint's fields: a round in 0..1e6, the model's weights (names and shapes of
    ``shapes``, finite), one history row per round so far."""
    from neurofl.models.checkpoint import check_state_dict

    hint = "remove it to start over"
    if not isinstance(state, dict) or any(k not in state for k in ("identity", "round", "weights", "rows")):
        raise UserError(f"{path}: not a neurofl fl checkpoint; {hint}")
    done, rows = state["round"], state["rows"]
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= 1_000_000:
        raise UserError(f"{path}: invalid round {done!r}; {hint}"[:300])
    weights = check_state_dict(state["weights"], path, "weights")
    if set(weights) != set(shapes) or any(tuple(weights[k].shape) != shapes[k] for k in shapes):
        raise UserError(f"{path}: weights do not fit the model of this run; {hint}")
    if any(not weights[k].is_floating_point() for k in weights):
        raise UserError(f"{path}: weights must be floating point; {hint}")
    if not isinstance(rows, list) or len(rows) != done + 1:
        got = len(rows) if isinstance(rows, list) else "no"
        raise UserError(f"{path}: history of {got} rows for round {done}; {hint}")
    for i, row in enumerate(rows):
        ok = isinstance(row, dict) and row.get("round") == i
        numbers = [row.get(k) for k in ("accuracy", "loss")] if ok else []
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers)
        if not ok:
            raise UserError(f"{path}: history row {i} is malformed; {hint}")
    return state


def load_checkpoint(
    out: Path, identity: dict[str, Any], shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, Any] | None:
    """The last completed round's state, or None for a fresh run.

    Returns {"round": int, "weights": name -> tensor, "rows": [per-round dicts]}. ``shapes``
    (name -> shape of the run's model weights), when given, is what the weights must fit.

    Raises
    ------
    UserError
        ``out`` holds a run with different settings, or a checkpoint that is unreadable or does not
        fit the run's model.
    """
    from neurofl.models.checkpoint import load_tensors_file

    path = Path(out) / CHECKPOINT
    if not path.exists() and not path.is_symlink():
        return None
    try:
        state = load_tensors_file(path, "fl checkpoint")
    except UserError as e:
        raise UserError(f"{e}; remove it to start over") from None
    saved = state.get("identity", {}) if isinstance(state, dict) else {}
    saved = saved if isinstance(saved, dict) else {}
    from neurofl.runs.identity import canonical_json  # the file's values may be tensors: compare as plain data

    for key in sorted({*identity, *(k for k in saved if isinstance(k, str))}):
        if key not in RESUMABLE and canonical_json(saved.get(key)) != canonical_json(identity.get(key)):
            raise UserError(
                f"{out}: holds a run with other '{key}' ({str(saved.get(key))[:80]!r}, "
                f"not {str(identity.get(key))[:80]!r}); use another --out (or the same settings to resume)"
            )
    if shapes is not None:
        _check_state(state, path, shapes)
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
