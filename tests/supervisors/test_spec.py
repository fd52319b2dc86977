"""ChildSpec validation: refuse bad specs at the boundary, with a fix in the message."""

from __future__ import annotations

import pytest

from supervisors import ChildSpec, Restart
from supervisors.testing import Crasher


def test_defaults_follow_the_issue() -> None:
    spec = ChildSpec("w", Crasher.start)
    assert (spec.restart, spec.shutdown, spec.significant) == (Restart.PERMANENT, 5.0, False)


def test_restart_accepts_its_string_value() -> None:
    assert ChildSpec("w", Crasher.start, restart="transient").restart is Restart.TRANSIENT  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"id": ""}, ValueError, "non-empty"),
        ({"start": "not callable"}, TypeError, "zero-argument callable"),
        ({"shutdown": 0.0}, ValueError, "abandoned"),
        ({"shutdown": float("inf")}, ValueError, "finite"),
        ({"significant": True}, ValueError, "transient or temporary"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    params: dict[str, object] = {"id": "w", "start": Crasher.start} | kwargs
    with pytest.raises(error, match=match):
        ChildSpec(**params)  # type: ignore[arg-type]
