"""``dsaccess exporter``: the servers' ``cn=monitor`` read live and served as Prometheus
metrics (``monitor``, ``exporter``, ``webconfig``)."""
