"""Reads of the compliance store, one module per domain, shared by the demo's summary, the command line,
the digest and the compliance page: one function per question, returning ids, counts, hashes and dates
only (never personal data), paginated and index-backed where a table grows without bound."""
