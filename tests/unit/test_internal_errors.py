"""The internal-error policy: what a bug on a record does, and what its report withholds."""

from __future__ import annotations

import logging

import pytest

from agents.internal_errors import POLICIES, InternalError, report
from serving import metrics

EMAIL = "ana@shop.example"


def failure() -> InternalError:
    try:
        raise KeyError(EMAIL)  # the message quotes the record, as a real bug's might
    except KeyError as exc:
        return InternalError("purchases", 2, 41, exc)


@pytest.mark.parametrize(("policy", "goes_on"), [("dead_letter", True), ("stop", False)])
def test_each_policy_says_whether_the_worker_goes_on(policy: str, goes_on: bool) -> None:
    assert POLICIES[policy](failure()) is goes_on


def test_the_reason_and_the_stop_name_the_type_and_place_but_not_the_message() -> None:
    found = failure()
    assert found.reason == "internal error: KeyError"
    assert "purchases[2]@41" in found.stopped() and EMAIL not in found.stopped()


def test_a_report_counts_the_bug_and_logs_its_frames_without_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = metrics.internal_errors.labels("purchases", "KeyError")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR, logger="agents.internal_errors"):
        report(failure())
    assert counter._value.get() == before + 1
    (record,) = caplog.records
    text = record.getMessage()
    assert "KeyError" in text and "purchases[2]@41" in text and "in failure" in text
    assert EMAIL not in text and record.exc_info is None
