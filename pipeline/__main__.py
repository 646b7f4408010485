"""The ``dsaccess`` command, and ``python -m pipeline``."""

from __future__ import annotations

import sys


def entry() -> int:
    """Load the command, then run it; a Ctrl-C while the libraries load (the first half
    second) ends with the same one line as later, not a traceback."""
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt:
        print("dsaccess: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(entry())
