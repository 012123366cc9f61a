"""Open defect, kept as a runnable reproduction outside the default suite
(`.venv/bin/pytest tests_open/`): under exactly-once, a second worker joining while events flow,
then the first leaving, ended with two different changes published (and committed) under one
version for a customer. faust-streaming has open reports of duplicates on rebalance under
exactly-once (#323, #517). See the README, Reliability, Open."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import Deployment, WorkerProcess
from tests.integration.test_rebalance import join_then_leave_while_events_flow

pytestmark = pytest.mark.integration


async def test_a_second_worker_joins_then_the_first_leaves_under_exactly_once(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    await join_then_leave_while_events_flow("exactly_once", deployment_factory, worker_factory)
