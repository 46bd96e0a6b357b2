"""OctoAI hook: connection type ``edgeinfer_octoai``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from
from airflow_provider_edgeinfer.hooks.connections import OctoAIExtras

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI
    from airflow_provider_edgeinfer.hooks.checks import CheckResult

#: Where the other OctoAI hosts live relative to a loopback host (the emulator's layout).
LOOPBACK_TEXT_SUFFIX = "/text"
LOOPBACK_DEPLOYMENT_SUFFIX = "/deployments/{name}"
#: A request id OctoAI cannot know: the async host answers it with a 4xx (the connection check).
PROBE_ID = "edgeinfer-check-probe"


def _url_extra(value: str) -> str:
    """An extra given as a URL, or as a bare host (https, or http on loopback)."""
    from airflow_provider_edgeinfer.clients.core import is_loopback

    value = value.strip()
    if "://" not in value:
        hostname = urlsplit(f"//{value}").hostname or value
        value = f"{'http' if is_loopback(hostname) else 'https'}://{value}"
    return value.rstrip("/")


class OctoAIHook(EdgeInferHook):
    """OctoAI image generation, deployed endpoints (Whisper) and text.

    Connection: host = the generation host (default ``https://image.octoai.run``), password = API
    token, plus the common timeout/retry extras and:

    - ``async_host``: where requests are polled and results fetched (default ``https://async.octoai.run``);
    - ``text_host``: the OpenAI-compatible text API (default ``https://text.octoai.run``);
    - ``deployment_url_template``: a deployed endpoint's URL, with ``{name}`` (default
      ``https://{name}.octoai.run``).

    When the host is loopback (the emulator), the defaults follow the emulator's layout instead:
    async host = host, text host = host + ``/text``, deployments = host + ``/deployments/{name}``.

    Every endpoint is a method of :attr:`api` (:class:`~airflow_provider_edgeinfer.clients.octoai.OctoAIAPI`)
    returning a call; send it with :meth:`run` (worker) or :meth:`arun` (trigger)::

        hook = OctoAIHook()
        result = hook.run(hook.api.generate_image("sdxl", {"prompt": "a lighthouse at dawn"}))
    """

    vendor: ClassVar[str] = "octoai"

    api: OctoAIAPI  # type: ignore[assignment]

    def build_api(self, conn: Connection) -> OctoAIAPI:
        from airflow_provider_edgeinfer.clients.core import is_loopback
        from airflow_provider_edgeinfer.clients.octoai import (
            ASYNC_BASE_URL,
            DEPLOYMENT_URL_TEMPLATE,
            IMAGE_BASE_URL,
            TEXT_BASE_URL,
            OctoAIAPI,
        )

        image = base_url_from(conn, IMAGE_BASE_URL, self.vendor)
        if is_loopback(urlsplit(image).hostname or ""):
            defaults = (image, image + LOOPBACK_TEXT_SUFFIX, image + LOOPBACK_DEPLOYMENT_SUFFIX)
        else:
            defaults = (ASYNC_BASE_URL, TEXT_BASE_URL, DEPLOYMENT_URL_TEMPLATE)
        extras = self.read_extras(conn, OctoAIExtras)
        given = (extras.async_host, extras.text_host, extras.deployment_url_template)
        async_url, text_url, template = (
            _url_extra(value) if value else default for value, default in zip(given, defaults, strict=True)
        )
        return OctoAIAPI(image, async_url, text_url, template)

    def inline_files_hint(self) -> str:
        from airflow_provider_edgeinfer.clients.octoai import MAX_ASYNC_BODY_BYTES

        return (
            "OctoAI takes media inline: put the file base64-encoded in the input (e.g. 'image' or "
            f"'audio'), at most {MAX_ASYNC_BODY_BYTES:,} bytes for a whole asynchronous request, or "
            "give a URL it can fetch. Nothing was sent."
        )

    # -- connection checks ---------------------------------------------------------------------

    paid_check_refusal: ClassVar[str] = "OctoAI's API states no price before an inference"

    def read_only_checks(self) -> Iterator[CheckResult]:
        from airflow_provider_edgeinfer.exceptions import EdgeInferError, JobFailedError
        from airflow_provider_edgeinfer.hooks.checks import CheckResult, count, error_text

        api = self.api
        yield self.attempt(
            "token accepted (text models listed)",
            api.list_text_models(),
            lambda models, _: count(models.data, "text models"),
        )
        try:
            self.run(api.poll(PROBE_ID))
            yield CheckResult("async host reachable", True, "a probe id was answered")
        except JobFailedError as exc:
            # OctoAI reports an unknown request with a 4xx: the host answered and took the token.
            yield CheckResult(
                "async host reachable", True, f"an unknown id was answered HTTP {exc.http_status}"
            )
        except EdgeInferError as exc:
            yield CheckResult("async host reachable", False, error_text(exc))
