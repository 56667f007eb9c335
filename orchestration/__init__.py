"""Calciphylaxis case registry: contract, landing zone, Dagster code location and the `registry` CLI."""

__version__ = "0.1.0"
