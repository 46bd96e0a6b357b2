"""Vendor API clients: pydantic models and httpx, with no Airflow import anywhere below here."""
