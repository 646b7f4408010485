"""Stable bucket ids for (server, connection): every line of a connection,
from every file and every parse task, lands in the same bucket.

The id mixes a blake2b digest of the server name (``server_seed``) with a
multiplicative (Fibonacci) hash of the connection number; the compiled shuffle
(``rust/core/src/shuffle.rs``) computes it per row: plain integer arithmetic, so
every worker process agrees (Python's ``hash()`` is salted per process).

>>> server_seed("ldap1") == server_seed("ldap1") != server_seed("ldap2")
True
"""

from __future__ import annotations

import hashlib


def server_seed(server: str) -> int:
    """A 63-bit seed per server name, the same in every process."""
    return int.from_bytes(hashlib.blake2b(server.encode(), digest_size=8).digest(), "big") >> 1
