"""Request deadline tracking (SPEC §4.1): select, evaluate, record, escalate."""
