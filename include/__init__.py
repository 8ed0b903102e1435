"""The product: privacy-compliance workflows over an operational PostgreSQL database.

Domain modules here import no Airflow; the seam between Airflow and the product is ``include.seam``.
The development kit (demo data, stand-ins, the demo) is the separate package ``devkit``.
"""
