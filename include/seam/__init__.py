"""The seam between Airflow and the product: the only package of ``include`` that imports Airflow.

A task gets everything it needs from here (connections, settings, its run's parameters, the mailer, the
object store, the audit context) and every failure leaves it as one sentence; the domain packages stay
plain Python that a unit test calls without a scheduler.
"""
