"""Personal-data discovery: find personal data the data map does not name (docs/discovery.md).

- :mod:`include.discovery.classify` — what a column holds, from a sample of its values (its name a weaker
  signal): plain Python and pandas, no database;
- :mod:`include.discovery.catalogue` — every table and column of a database, and a bounded sample of each table
  (``TABLESAMPLE SYSTEM``: the cost stays flat as a table grows);
- :mod:`include.discovery.findings` — the scan compared with the data map, the suggested data-map entries, the
  findings table (``compliance.discovery_findings``), dismissal;
- :mod:`include.discovery.orphans` — objects in the allowed buckets that no row names;
- :mod:`include.discovery.notices` — the one email per new finding, through the shared delivery engine;
- :mod:`include.discovery.steps` — the DAG's steps (``privacy-ops discover``, ``findings`` and ``dismiss-finding``
  are in :mod:`include.cli`).

No sampled value leaves the scan: what is kept, logged, stored or emailed is a table, a column, a kind, a
confidence and counts.
"""
