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
    monkeypatch.setattr(dispatch, "POLL_SECONDS", 60.0)  # only the wake-up can deliver in time
    state, queue, stop = FakeLinkState(), Queue(), threading.Event()
    loop = threading.Thread(target=dispatch.dispatch_messages, args=(state, queue, {0: 0, 1: 1}, stop))
    loop.start()
    try:
        state.store_message_ins((0, "a"))
        assert queue.get(timeout=10) == (0, "a")
        for name in "bcd":  # several messages for one node: all of them move, one per sweep
            state.store_message_ins((1, name))
        assert sorted(queue.get(timeout=10)[1] for _ in range(3)) == ["b", "c", "d"]
        with pytest.raises(Empty):
            queue.get(timeout=0.2)
    finally:
        stop.set()
        state.store_message_ins((0, "wake"))  # wakes the loop so it sees the stop
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert "store_message_ins" not in vars(state)  # the state's own method is back


def test_fast_dispatch_swaps_flowers_loop_only_inside():
    from flwr.server.superlink.fleet.vce import vce_api

    original = vce_api.add_messages_to_queue
    with dispatch.fast_dispatch() as active:
        assert active
        assert vce_api.add_messages_to_queue is dispatch.dispatch_messages
    assert vce_api.add_messages_to_queue is original
