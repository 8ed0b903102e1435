"""Outbound notifications (email through SendGrid) shared by every DAG."""
