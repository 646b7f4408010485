"""Exception hierarchy: one base class, each subclass also a builtin.

Messages follow "what: value (where), then what to do". The library raises;
only ``cli.py`` prints and chooses the exit code.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error dsaccess raises on purpose."""


class ConfigError(PipelineError, ValueError):
    """A command-line option or configuration file is wrong."""


class NoLogsError(ConfigError):
    """The inputs hold no file named as an access log."""


class SourceError(PipelineError, OSError):
    """A log file or server could not be read."""


class ShuffleError(PipelineError, ValueError):
    """A shuffle (scratch) file that is not what a parse task wrote: damaged, cut, or of
    another layout; the message is what is wrong with which file, then the fix."""

    FIX = "the scratch disk lost or changed bytes, or another run shares the folder; run again"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: {self.FIX}")


class OutputError(PipelineError, OSError):
    """The output (or its staging folder) could not be written."""
