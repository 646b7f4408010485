"""dsaccess: 389 Directory Server access logs → who loads the directory, how, how slowly."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PipelineError  # noqa: E402
from .fingerprint import fingerprint  # noqa: E402
from .logline import parse_lines  # noqa: E402

__all__ = ["PipelineError", "__version__", "fingerprint", "parse_lines", "run"]


def run(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Run the job (see ``pipeline.run.run``); imported lazily because it loads Dask."""
    from .run import run as _run

    return _run(*args, **kwargs)
