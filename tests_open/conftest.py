"""Fixtures of the integration suite, for the open-defect reproductions."""

from tests.integration.conftest import deployment_factory, stack, worker_factory

__all__ = ["deployment_factory", "stack", "worker_factory"]
