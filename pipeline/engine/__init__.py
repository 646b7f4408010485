"""The job: ``run`` and ``trace_logs`` build one Dask graph (``plan`` cuts the work,
``cluster`` runs it) whose tasks (``stages``) call the compiled core: parse, shuffle
(``shuffle``), join and enrich (``enrich``); ``finish`` assembles and writes the
results."""
