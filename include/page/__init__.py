"""The compliance page: its sections, their JSON, and the static page that shows them.

Plain Python over a psycopg connection: the Airflow plugin (``plugins/privacy_compliance.py``) adds the
routes, the authentication and the connection; everything it shows comes from ``include.reads``.
"""
