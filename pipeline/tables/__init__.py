"""The aggregate tables and the summary: the core's partials combined and finished
(``aggregate``), and the pieces they are made of (``histogram``, ``offsets``, ``dn``)."""
