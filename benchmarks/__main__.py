"""``python -m benchmarks``: see benchmarks/cli.py (``python -m benchmarks --help``)."""

from .cli import main

main()
