"""A Segment Spec identify call whose birthday is no date still converts: the trait is dropped."""

from __future__ import annotations

import pytest

from streams.segment_spec import Ignored, to_contract


@pytest.mark.parametrize("birthday", ["¹⁹⁹⁰-01-01", "1990", "abcd-01-01"])
def test_odd_birthdays_are_ignored_not_fatal(birthday: str) -> None:
    message = {
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-03-01T10:00:00Z",
        "traits": {"birthday": birthday},
    }
    mapped = to_contract(message, received_at=0)
    assert not isinstance(mapped, Ignored)
    assert "birth_year" not in mapped[1]["traits"]
