"""A fifth vendor defined entirely in tests: proof that adding a vendor is a client and a hook.

``api.py`` is a small fake vendor API (a Starlette app served on 127.0.0.1 by the test), ``client.py``
its :class:`~airflow_provider_edgeinfer.clients.core.VendorAPI`, ``hook.py`` its
:class:`~airflow_provider_edgeinfer.hooks.base.EdgeInferHook`, registered for a test through the
provider's own registry (``hooks.HOOKS``, by connection type), and ``dags.py`` DAGs that run it
through the operators and sensors. Nothing here is known to the package.
"""
