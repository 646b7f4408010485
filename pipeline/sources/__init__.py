"""Where the logs come from and where files go: local folders, sftp:// and other fsspec
URLs (``source``, ``store``), ``dsaccess collect``, and what a file holds (``sniff``,
``jsonlog``)."""
