"""dsaccess: 389 Directory Server access logs → who loads the directory, how, how slowly.

Nothing is imported here: the command's Ctrl-C guard (``__main__.entry``) must be in
place before polars, pyarrow and Dask load (half a second)."""

from __future__ import annotations

__version__ = "0.1.0"
