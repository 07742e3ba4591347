"""Fault tests: real broker, real PostgreSQL, real processes; nothing lost, nothing doubled."""
