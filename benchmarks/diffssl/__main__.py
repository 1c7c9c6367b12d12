"""``python -m benchmarks.diffssl``: see benchmarks/diffssl/cli.py (``--help``)."""

from .cli import main

main()
