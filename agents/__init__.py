"""Faust agents: thin glue between topics, tables and the pure engine."""
