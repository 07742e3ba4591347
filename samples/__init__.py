"""Synthetic sample data in the sources' exact shapes, and local servers that replay it."""
