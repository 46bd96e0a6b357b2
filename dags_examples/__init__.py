"""Examples shipped in the wheel as ``airflow_provider_edgeinfer.example_dags`` (this folder, linked)."""
