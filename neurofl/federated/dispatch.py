"""Event-driven message dispatch for Flower's simulation engine (``flwr==1.30.0`` only).

The simulation engine hands the server's messages to its node workers from a thread that polls the
LinkState every 0.1 s (``vce_api.add_messages_to_queue``), and the in-memory grid polls for
replies every 0.1 s (``InMemoryGrid.pull_interval``). Every message exchange therefore waits
~50 ms twice before anything happens: a whole in-process round of the digits ANN with 100 clients
takes less. :func:`fast_dispatch` swaps in a loop that moves the same messages through the same
LinkState calls but wakes as soon as the server stores one (the 0.1 s poll remains as a fallback),
and :func:`fast_grid` shortens the grid's poll.

Both touch Flower internals (a private function of the engine and an instance method of the
LinkState), so they apply only under the Flower version they were written and tested against,
:data:`PINNED_FLOWER`, checked once when a run starts (:func:`speedups_available`). Under any
other version, or when an expected internal is missing, they are off and one line is logged;
the run is then slower, never different. A failure inside the replacement loop is logged and
Flower's own loop takes over. :data:`STATS` counts what they did (the tests assert it is non-zero
under the pinned version, so a silent no-op fails CI).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Queue
from typing import Any

PINNED_FLOWER = "1.30.0"  # the only Flower version these speed-ups touch (pyproject pins it)
POLL_SECONDS = 0.1  # Flower's own poll interval: the fallback, and how soon a stop is noticed
BURST_SECONDS = 0.001  # a push of many messages counts as one burst while stores come this close
MAX_BURST_SECONDS = 0.05  # ... but the first message waits no longer than this for the rest
GRID_PULL_SECONDS = 0.002  # the in-memory grid's reply poll (Flower's default 0.1 s)

_SIGNATURE = ["state", "queue", "nodes_mapping", "f_stop"]
log = logging.getLogger("neurofl.federated")
# what the speed-ups did in this process: loops run, messages moved, grids sped up, fallbacks
STATS = {"loops": 0, "messages": 0, "grids": 0, "fallbacks": 0}


@functools.lru_cache(maxsize=1)
def speedups_available() -> str | None:
    """None when the installed Flower is :data:`PINNED_FLOWER` with the internals the speed-ups
    replace; otherwise the reason they are off (logged once by the caller)."""
    from importlib import metadata

    try:
        version = metadata.version("flwr")
    except metadata.PackageNotFoundError:
        return "Flower is not installed"
    if version != PINNED_FLOWER:
        return f"Flower {version} is not the tested {PINNED_FLOWER}"
    try:
        from flwr.server.grid.inmemory_grid import InMemoryGrid
        from flwr.server.superlink.fleet.vce import vce_api
        from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState
    except ImportError as e:
        return f"a Flower internal is missing ({e})"
    if list(inspect.signature(vce_api.add_messages_to_queue).parameters) != _SIGNATURE:
        return "vce_api.add_messages_to_queue has another signature"
    for name, params in (("store_message_ins", ["self", "message"]), ("get_message_ins", ["self", "node_id", "limit"])):
        if list(inspect.signature(getattr(InMemoryLinkState, name)).parameters) != params:
            return f"InMemoryLinkState.{name} has another signature"
    if "pull_interval" not in inspect.signature(InMemoryGrid.__init__).parameters:
        return "InMemoryGrid has no pull_interval"
    return None


def _off(what: str) -> None:
    log.warning("neurofl: %s is off (%s); Flower's 0.1 s polling is used", what, speedups_available())


def dispatch_messages(state: Any, queue: Queue, nodes_mapping: dict, f_stop: threading.Event) -> None:
    """Move undelivered messages from ``state`` (a Flower LinkState) into ``queue`` until ``f_stop``.

    Same contract as ``vce_api.add_messages_to_queue``; woken by ``state.store_message_ins``.
    """
    stored = threading.Event()
    store = state.store_message_ins

    def store_and_signal(message: Any) -> Any:
        message_id = store(message)
        stored.set()  # after the store: a sweep that starts after this sees the message
        return message_id

    STATS["loops"] += 1
    state.store_message_ins = store_and_signal
    try:
        while not f_stop.is_set():
            stored.clear()
            moved = 0
            for node_id in nodes_mapping:
                for message in state.get_message_ins(node_id=node_id, limit=1):
                    queue.put(message)
                    moved += 1
            STATS["messages"] += moved
            if moved:
                continue  # a node may hold more than one message: sweep until none is left
            if stored.wait(POLL_SECONDS):
                deadline = time.monotonic() + MAX_BURST_SECONDS
                while time.monotonic() < deadline:
                    stored.clear()
                    if not stored.wait(BURST_SECONDS):
                        break
    finally:
        del state.store_message_ins  # the instance attribute; the class's method shows through again


def _guarded(original: Any) -> Any:
    """:func:`dispatch_messages`, falling back to Flower's ``original`` loop (with one logged line)
    if it fails, so a broken speed-up costs time, not the run."""

    def loop(state: Any, queue: Queue, nodes_mapping: dict, f_stop: threading.Event) -> None:
        try:
            dispatch_messages(state, queue, nodes_mapping, f_stop)
        except Exception as e:  # noqa: BLE001 - any failure of the replacement hands over to Flower's loop
            STATS["fallbacks"] += 1
            log.warning("neurofl: event-driven dispatch failed (%s: %s); Flower's own loop takes over",
                        type(e).__name__, e)  # fmt: skip
            original(state, queue, nodes_mapping, f_stop)

    return loop


@contextmanager
def fast_dispatch() -> Iterator[bool]:
    """Within the block, Flower's simulation engine dispatches with :func:`dispatch_messages`.

    Yields whether it does: ``False`` (Flower's own loop kept, one line logged) unless
    :func:`speedups_available`.
    """
    if speedups_available() is not None:
        _off("event-driven dispatch")
        yield False
        return
    from flwr.server.superlink.fleet.vce import vce_api

    original = vce_api.add_messages_to_queue
    vce_api.add_messages_to_queue = _guarded(original)
    try:
        yield True
    finally:
        vce_api.add_messages_to_queue = original


def fast_grid(grid: Any) -> bool:
    """Shorten the in-memory grid's reply poll to :data:`GRID_PULL_SECONDS` (a poll costs ~0.05 ms).
    Returns whether it did (only under :func:`speedups_available`, on Flower's ``InMemoryGrid``)."""
    if speedups_available() is not None:
        return False
    from flwr.server.grid.inmemory_grid import InMemoryGrid

    if not isinstance(grid, InMemoryGrid):
        return False  # another grid (deployment engine): nothing to speed up
    grid.pull_interval = GRID_PULL_SECONDS
    STATS["grids"] += 1
    return True
