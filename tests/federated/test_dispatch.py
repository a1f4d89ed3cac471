"""The event-driven dispatch loop that replaces the Flower simulation engine's 0.1 s poll."""

import threading
from queue import Empty, Queue

import pytest

from neurofl.federated import dispatch


class FakeLinkState:
    """Flower's LinkState calls the loop uses: store_message_ins and get_message_ins(limit=1)."""

    def __init__(self):
        self.pending: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def store_message_ins(self, message: tuple[int, str]) -> str:
        with self.lock:
            self.pending.append(message)
        return message[1]

    def get_message_ins(self, node_id: int, limit: int) -> list:
        with self.lock:
            mine = [m for m in self.pending if m[0] == node_id][:limit]
            for m in mine:
                self.pending.remove(m)
        return mine


def test_messages_move_when_stored_not_on_the_poll(monkeypatch):
    monkeypatch.setattr(dispatch, "POLL_SECONDS", 3600.0)  # only the wake-up can deliver in time
    state, queue, stop = FakeLinkState(), Queue(), threading.Event()
    loop = threading.Thread(target=dispatch.dispatch_messages, args=(state, queue, {0: 0, 1: 1}, stop))
    loop.start()
    try:
        state.store_message_ins((0, "a"))
        assert queue.get(timeout=120) == (0, "a")
        for name in "bcd":  # several messages for one node: all of them move, one per sweep
            state.store_message_ins((1, name))
        assert sorted(queue.get(timeout=120)[1] for _ in range(3)) == ["b", "c", "d"]
        with pytest.raises(Empty):
            queue.get(timeout=0.2)
    finally:
        stop.set()
        state.store_message_ins((0, "wake"))  # wakes the loop so it sees the stop
        loop.join(timeout=120)
    assert not loop.is_alive()
    assert "store_message_ins" not in vars(state)  # the state's own method is back


def test_fast_dispatch_swaps_flowers_loop_only_inside():
    """Under the pinned Flower the speed-ups are active (a silent no-op would fail here)."""
    from importlib import metadata

    from flwr.server.superlink.fleet.vce import vce_api

    assert metadata.version("flwr") == dispatch.PINNED_FLOWER
    assert dispatch.speedups_available() is None
    original = vce_api.add_messages_to_queue
    with dispatch.fast_dispatch() as active:
        assert active
        assert vce_api.add_messages_to_queue is not original
    assert vce_api.add_messages_to_queue is original


def test_another_flower_version_turns_the_speedups_off_with_one_line(monkeypatch, caplog):
    from importlib import metadata

    from flwr.server.grid.inmemory_grid import InMemoryGrid
    from flwr.server.superlink.fleet.vce import vce_api

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.31.0" if name == "flwr" else real(name))
    dispatch.speedups_available.cache_clear()
    try:
        original = vce_api.add_messages_to_queue
        with caplog.at_level("WARNING", logger="neurofl.federated"), dispatch.fast_dispatch() as active:
            assert not active and vce_api.add_messages_to_queue is original
        assert [r.getMessage() for r in caplog.records] == [
            "neurofl: event-driven dispatch is off (Flower 1.31.0 is not the tested 1.30.0); "
            "Flower's 0.1 s polling is used"
        ]
        grid = InMemoryGrid.__new__(InMemoryGrid)
        grid.pull_interval = 0.1
        assert not dispatch.fast_grid(grid) and grid.pull_interval == 0.1
    finally:
        dispatch.speedups_available.cache_clear()


class BrokenLinkState(FakeLinkState):
    def get_message_ins(self, node_id: int, limit: int) -> list:
        raise KeyError("an internal that changed")


def test_a_failing_replacement_hands_over_to_flowers_loop(caplog):
    calls = []

    def flowers_loop(state, queue, nodes_mapping, f_stop):
        calls.append(state)

    state = BrokenLinkState()
    with caplog.at_level("WARNING", logger="neurofl.federated"):
        dispatch._guarded(flowers_loop)(state, Queue(), {0: 0}, threading.Event())
    assert calls == [state] and "Flower's own loop takes over" in caplog.text
    assert "store_message_ins" not in vars(state)
