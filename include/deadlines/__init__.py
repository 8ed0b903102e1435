"""Request deadline tracking (docs/rules.md): select, evaluate, record, escalate."""
