"""An output folder: its files, atomically replaced (``files``); the report, the
metrics and the terminal's tables drawn from its tables (``report``, ``render``,
``textreport``, ``metrics``, ``views``, ``terminal``); ``dsaccess merge``."""
