"""Configuration: the settings object and the names of topics and Redis keys."""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
