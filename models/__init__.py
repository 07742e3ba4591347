"""Pydantic models of what flows, the topic catalogue, and the kommune/region registry."""
