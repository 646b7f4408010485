"""Questions for one incident or one week against another: ``dsaccess trace`` (one
session's requests, from an output or the logs) and ``dsaccess compare``."""
