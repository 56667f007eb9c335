"""The `registry` command and `registry serve`."""

from orchestration.cli.main import main

__all__ = ["main"]
