"""The ``dsaccess`` command, and ``python -m pipeline``."""

from __future__ import annotations

import os
import sys

INTERRUPTED, TERMINATED = 130, 143


def entry() -> int:
    """Load the command, then run it; a Ctrl-C while the libraries load (the first half
    second) ends with the same one line as later, not a traceback."""
    try:
        from .cli import main
        code = main()
    except KeyboardInterrupt:
        print("dsaccess: interrupted", file=sys.stderr)
        code = INTERRUPTED
    if code in (INTERRUPTED, TERMINATED):
        # The run has cleaned up and said so; exit now, with this code. A Ctrl-C that
        # lands while an extension module runs Python code through PyRun_String (as
        # some do while they are imported) leaves CPython's "unhandled KeyboardInterrupt"
        # flag set although the interrupt was handled, and at exit CPython then kills
        # the process with SIGINT instead (exit -2, seen 1 time in 20 with Ctrl-C in
        # the first 0.3 s, strace: rt_sigaction(SIGINT, SIG_DFL), kill(self, SIGINT)).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(entry())
