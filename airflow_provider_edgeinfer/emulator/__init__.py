"""A local emulator of the four vendor APIs, so every DAG runs offline and without credit.

- ``python -m airflow_provider_edgeinfer.emulator --port 8080`` serves it on loopback;
- :func:`~airflow_provider_edgeinfer.emulator.app.create_app` gives the ASGI app for
  ``httpx.ASGITransport``;
- :class:`~airflow_provider_edgeinfer.emulator.server.EmulatorServer` runs it on a real socket in
  a thread; the pytest plugin (fixture ``edgeinfer_emulator``) wraps that.
"""
