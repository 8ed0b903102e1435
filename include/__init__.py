"""Privacy-compliance domain code: deadline rules, data map, compliance store, stand-ins.

Pure domain modules here import no Airflow; the DAG-side glue lives in ``include.runtime``.
"""
