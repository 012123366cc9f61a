"""Serving: the Redis membership store and the worker's HTTP front door."""
