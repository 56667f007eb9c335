"""Dagster definitions, one module per concern: resources, assets, checks, sensors."""
