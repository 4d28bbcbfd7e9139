"""Events are frozen; the cancel token raises Cancelled with the partial result."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from impasto.errors import Cancelled, ConfigError, ImpastoError, UnknownModelError, WeightsError
from impasto.events import CancelToken, Progress, emit


def test_events_are_frozen():
    ev = Progress(step=1, total=2, losses={"content": 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.step = 3  # type: ignore[misc]


def test_cancel_from_another_thread_raises_with_partial():
    token = CancelToken()
    token.check("x")  # not cancelled: nothing happens
    t = threading.Thread(target=token.cancel)
    t.start()
    t.join()
    with pytest.raises(Cancelled) as info:
        token.check(partial="latest image")
    assert info.value.partial == "latest image"


def test_emit_calls_callback_once_and_tolerates_none():
    seen = []
    emit(seen.append, Progress(step=1, total=1))
    emit(None, Progress(step=1, total=1))
    assert len(seen) == 1 and seen[0].step == 1


def test_exit_codes_of_the_hierarchy():
    assert ConfigError("x").exit_code == 2 and UnknownModelError("x").exit_code == 2
    assert WeightsError("x").exit_code == 1 and ImpastoError("x").exit_code == 1
    assert issubclass(UnknownModelError, ConfigError)


def test_events_are_deeply_frozen_copies():
    # Bug: Progress.losses was the same dict object as the run's history, so a later step could change an event
    # already delivered (and a callback could change the run).
    history = {"total": 1.0, "style": {"relu1_1": 0.5}}
    info = {"layers": ["relu1_1"], "nested": {"a": 1}}
    ev = Progress(step=1, total=2, losses=history, info=info)
    history["total"] = 99.0
    history["style"]["relu1_1"] = 99.0
    info["layers"].append("relu2_1")
    assert ev.losses["total"] == 1.0 and ev.losses["style"]["relu1_1"] == 0.5
    assert list(ev.info["layers"]) == ["relu1_1"]
    with pytest.raises(TypeError):
        ev.losses["total"] = 2.0  # type: ignore[index]
    with pytest.raises(TypeError):
        ev.info["nested"]["a"] = 2  # type: ignore[index]


def test_started_and_preview_info_are_frozen_too():
    from impasto.events import Preview, Started

    info = {"model": "m"}
    st, pv = Started(total=3, info=info), Preview(step=1, image=None, info=info)
    info["model"] = "changed"
    assert st.info["model"] == "m" and pv.info["model"] == "m"
    with pytest.raises(TypeError):
        st.info["model"] = "x"  # type: ignore[index]
