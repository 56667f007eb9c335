"""The `registry` command (main.py) and `registry serve` (serve.py)."""
