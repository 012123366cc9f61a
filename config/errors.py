"""The project's exceptions: one base, one subclass for each thing that can go wrong."""


class SegstreamError(Exception):
    """Base of every error segstream raises on purpose."""


class ConfigError(SegstreamError):
    """A setting or a configuration file is wrong; the message names the source and the field."""


class InvalidEvent(SegstreamError):
    """An input record breaks the event contract; the message is the dead-letter reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InternalFailure(SegstreamError):
    """A bug on a record stopped the worker (SEGSTREAM_ON_INTERNAL_ERROR=stop)."""


class StackError(SegstreamError):
    """The local Kafka or Redis could not be installed, started or reached."""


class TopicLayoutError(SegstreamError):
    """An existing topic has a partition count that breaks co-partitioning."""


class CatalogError(ConfigError):
    """A segment catalog file is wrong; the message names the file, the segment and the field."""
