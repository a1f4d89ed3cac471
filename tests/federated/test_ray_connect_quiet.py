"""A refused ``fl --ray-address`` is one line: what Ray writes to stderr while it tries to connect
(its INFO line, its C++ client's warnings, on file descriptor 2) is held back and dropped with the
refusal, and shown when the connection succeeds."""

from __future__ import annotations

import os

import pytest

from neurofl.errors import UserError


def _noisy_init(fail: bool):  # noqa: ANN202 - a stand-in for ray.init
    def init(**_kw: object) -> None:
        os.write(2, b"[W gcs_client.cc:182] Failed to get cluster ID from GCS server\n")
        if fail:
            raise ConnectionError("could not connect")

    return init


@pytest.mark.parametrize("fail", [True, False])
def test_what_ray_prints_while_connecting_is_held_back(monkeypatch, capfd, fail: bool) -> None:
    ray = pytest.importorskip("ray")
    from neurofl.federated.flower import _connect_ray

    monkeypatch.setattr(ray, "init", _noisy_init(fail))
    if fail:
        with pytest.raises(UserError, match="--ray-address 10.0.0.1:6379: cannot connect"):
            _connect_ray("10.0.0.1:6379", {})
        assert capfd.readouterr().err == ""
    else:
        _connect_ray("10.0.0.1:6379", {})
        assert "Failed to get cluster ID" in capfd.readouterr().err
