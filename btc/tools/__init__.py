"""Command-line tools: `btc` (see cli.py)."""
