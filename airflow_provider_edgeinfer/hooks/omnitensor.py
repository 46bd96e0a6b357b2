"""OmniTensor hook: connection type ``edgeinfer_omnitensor``."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
from airflow_provider_edgeinfer.hooks.connections import OmniTensorExtras

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.core import Credentials, TokenExchangeAuth
    from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI
    from airflow_provider_edgeinfer.clients.transport import AsyncClient, SyncClient
    from airflow_provider_edgeinfer.hooks.checks import CheckResult


class OmniTensorHook(EdgeInferHook):
    """OmniTensor: models, synchronous inference, compute, datasets and OMNIT payments.

    Connection: host (default ``https://api.omnitensor.io``), password = API key, extra ``secret``
    (required: key and secret are exchanged for a short-lived token), optional extra
    ``max_model_bytes`` (largest model file uploaded, default 100 MB), plus the common timeout/retry
    extras.

    The token is cached per connection: the hook's blocking client and the async client it shares
    on the triggerer's event loop use one token exchange, renewed a minute before expiry::

        hook = OmniTensorHook()
        result = hook.run(hook.api.inference("sentiment-v1", {"text": "great results"}))
    """

    vendor: ClassVar[str] = "omnitensor"

    api: OmniTensorAPI  # type: ignore[assignment]

    def credentials(self, conn: Connection) -> Credentials:
        from airflow_provider_edgeinfer.clients.core import Credentials
        from airflow_provider_edgeinfer.secrets import mask

        key = super().credentials(conn).api_key.get_secret_value()
        secret = self.read_extras(conn, OmniTensorExtras).secret
        if not secret or not secret.get_secret_value():
            raise ConfigurationError(
                f"connection {self.conn_id!r} has no API secret",
                vendor=self.vendor,
                hint="Put the OmniTensor secret in the connection's extra 'secret'.",
            )
        mask(secret.get_secret_value())
        return Credentials.of(key, secret.get_secret_value())

    def inline_files_hint(self) -> str:
        return (
            "OmniTensor takes files as datasets or models: use PresignedUploadOperator(kind='dataset') "
            "or kind='model', or put the data inline in the input. Nothing was sent."
        )

    # -- one token per connection -----------------------------------------------------------------

    @cached_property
    def token_auth(self) -> TokenExchangeAuth:
        """The connection's token cache, shared by the blocking client and the async one."""
        return self.api.build_auth(self.credentials(self.connection))

    def _new_sync_client(self) -> SyncClient[Any]:
        from airflow_provider_edgeinfer.clients.transport import SyncClient

        conn = self.connection
        return SyncClient(
            self.api,
            self.credentials(conn),
            self.http_settings(conn),
            auth=self.token_auth,
            verify=self._ssl_context,
        )

    def async_client(self, conn: Connection) -> AsyncClient[Any]:
        from airflow_provider_edgeinfer.clients.transport import AsyncClient

        # Built once per connection and loop (the shared registry leases it to every later hook), so
        # a thousand triggers still make one token exchange. The connection is already loaded.
        return AsyncClient(self.api, self.credentials(conn), self.http_settings(conn), auth=self.token_auth)

    # -- connection checks ---------------------------------------------------------------------

    paid_check_refusal: ClassVar[str] = "OmniTensor states an inference's cost (in OMNIT) only after it ran"

    def read_only_checks(self) -> Iterator[CheckResult]:
        from airflow_provider_edgeinfer.hooks.checks import count

        api = self.api
        yield self.attempt(
            "key and secret exchanged, balance read",
            api.balance(),
            lambda balance, _: f"balance {balance.balance} {balance.currency}",
        )
        yield self.attempt(
            "models listed",
            api.list_models(limit=1),
            lambda page, _: count(page, "model(s) on the first page"),
            lambda _, result: (
                ["the model list came as an object, not the documented bare array"]
                if result.content.lstrip()[:1] == b"{"
                else []
            ),
        )
