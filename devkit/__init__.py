"""The development kit: demo data, local stand-ins for SendGrid and GCS, an embedded PostgreSQL, the demo
and the local Airflow runner.

It is not part of the product: nothing under ``include/`` imports it (a test enforces that), and the
Airflow image of the Celery stack is built without it. It imports the product freely.
"""
