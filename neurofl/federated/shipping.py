"""Ship a large read-only object to each Ray worker process once, not with every message.

Flower's Ray backend passes the ``ClientApp`` loader to the actor with every message, so whatever
the app's closure holds (the task: every client's data) is pickled per message: 0.2 s per message
at 1,000 digits clients, more than the clients' compute. Wrapped in :class:`ShipOnce`, the object
is put into Ray's object store once and pickles as a token plus an object reference; a worker
fetches it on first use and keeps it for the rest of the run.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

_RECEIVED: dict[str, Any] = {}  # token -> object, in a worker process (one run at a time)


def _receive(token: str, ref: Any) -> Any:
    if token not in _RECEIVED:
        import ray

        _RECEIVED.clear()
        _RECEIVED[token] = ray.get(ref)
    return _RECEIVED[token]


class ShipOnce:
    """Holds ``value``; unpickles (in a Ray worker) as ``value`` itself, fetched once per process."""

    def __init__(self, value: Any):
        self.value = value
        self.token = uuid.uuid4().hex
        self._ref: Any = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple:
        import ray

        with self._lock:  # Flower's backend pickles from several threads
            if self._ref is None:
                self._ref = ray.put(self.value)
        return (_receive, (self.token, self._ref))


def received(obj: Any) -> Any:
    """The shipped value: ``obj.value`` in the sending process, ``obj`` itself where it arrived."""
    return obj.value if isinstance(obj, ShipOnce) else obj
