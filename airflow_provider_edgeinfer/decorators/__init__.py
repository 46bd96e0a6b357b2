"""TaskFlow decorators: ``@task.edgeinfer_batch`` and ``@task.edgeinfer_inference``.

Registered in the provider metadata (``task-decorators``), so Airflow offers them as ``task.<name>``
once the provider is installed.
"""
