"""Indicator index and reports for analysts."""
