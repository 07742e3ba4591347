"""byflyt: hourly cycling and transit volumes per kommune, from live mobility feeds."""

__version__ = "0.1.0"
