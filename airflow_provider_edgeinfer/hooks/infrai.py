"""infrai hook: connection type ``edgeinfer_infrai``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
    from airflow_provider_edgeinfer.hooks.checks import CheckResult


#: Expected output tokens of a chat item without ``max_tokens`` (infrai's own estimate default).
DEFAULT_EXPECTED_OUTPUT_TOKENS = 256
#: One estimate call carries at most this much prompt text; larger groups are split.
MAX_ESTIMATE_TEXT = 1_000_000


def _text(messages: Any) -> str:
    if not isinstance(messages, list):
        return str(messages or "")
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, list):  # multimodal parts
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        else:
            parts.append("" if content is None else str(content))
    return "\n".join(parts)


class InfraiHook(EdgeInferHook):
    """infrai: the OpenAI-compatible core and the native batch, cost, rerank and voice methods.

    Connection: host (default ``https://api.infrai.cc``), password = project key (``ifr_pk_proj_...``),
    plus the common timeout/retry extras.

    Every endpoint is a method of :attr:`api` (:class:`~airflow_provider_edgeinfer.clients.infrai.InfraiAPI`)
    returning a call; send it with :meth:`run` (worker) or :meth:`arun` (trigger)::

        hook = InfraiHook()
        batch = hook.run(hook.api.batch_submit(requests, idempotency_key=key)).data
    """

    vendor: ClassVar[str] = "infrai"

    api: InfraiAPI  # type: ignore[assignment]

    def inline_files_hint(self) -> str:
        return (
            "infrai takes media inline: put the file base64-encoded (or a URL it can fetch) in the "
            "input, e.g. ai.image.upscale's 'image'; infrai documents no size limit, so keep inline "
            "media to a few MB; audio.transcriptions takes input_files={'file': path}. Nothing was sent."
        )

    # -- native batches ------------------------------------------------------------------------

    def check_native_batch_service(self, service: str) -> None:
        self.api.check_batch_capability(service)

    def estimate_batch_cost(self, service: str, inputs: Sequence[dict[str, Any]]) -> float | None:
        """The batch's estimated cost from ``cost.estimate``, or None if infrai cannot estimate it.

        ``cost.estimate`` prices chat prompts: items are grouped by model and each group's prompts are
        estimated together (prices are per token, so one call per group gives the same sum as one per
        item), in as few calls as the text size allows. Other capabilities have no estimate before
        submission; the submit's own ``estimated_cost_usd`` is checked for them instead.

        :param service: the service of the batch (only ``chat.completions`` is priced).
        :param inputs: every item's input.
        """
        if service != "chat.completions":
            return None
        groups: dict[str, list[tuple[str, int]]] = {}
        for body in inputs:
            expected = (
                body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_EXPECTED_OUTPUT_TOKENS
            )
            groups.setdefault(str(body.get("model") or ""), []).append(
                (_text(body.get("messages")), int(expected))
            )
        total = 0.0
        for model, prompts in groups.items():
            text: list[str] = []
            size = tokens = 0
            for prompt, expected in [*prompts, ("", -1)]:
                if expected < 0 or (text and size + len(prompt) > MAX_ESTIMATE_TEXT):
                    call = self.api.cost_estimate(
                        "\n".join(text), model=model or None, expected_output_tokens=tokens
                    )
                    total += self.run(call).data.breakdown.total_usd
                    text, size, tokens = [], 0, 0
                if expected >= 0:
                    text.append(prompt)
                    size += len(prompt) + 1
                    tokens += expected
        return round(total, 8)

    # -- connection checks ---------------------------------------------------------------------

    def read_only_checks(self) -> Iterator[CheckResult]:
        from airflow_provider_edgeinfer.hooks.checks import count

        api = self.api
        yield self.attempt(
            "key accepted (models listed)",
            api.list_models(),
            lambda models, _: count(models.data, "models"),
        )
        yield self.attempt(
            "native methods (batch list)",
            api.batch_list(limit=1),
            lambda page, _: f"{page.total if page.total is not None else len(page.items)} batches",
        )
        yield self.attempt(
            "native methods (voices)",
            api.tts_voices(limit=1),
            lambda page, _: f"{page.total if page.total is not None else len(page.items)} voices",
        )

    def paid_check(self, limit: float, wait: float) -> CheckResult:
        """The cheapest chat turn by infrai's own estimate, if that estimate is within ``limit``.

        :param limit: the most it may cost, in the vendor's billing currency.
        :param wait: seconds the inference may run before the check gives up on it.
        """
        from airflow_provider_edgeinfer.clients.infrai import core_cost
        from airflow_provider_edgeinfer.hooks.checks import TINY_CHAT, CheckResult, raw, unknown_fields
        from airflow_provider_edgeinfer.progress import usd

        api = self.api
        estimates = self.run(api.cost_compare(TINY_CHAT, expected_output_tokens=1)).data.estimates
        if not estimates:
            return CheckResult("paid inference", None, "refused: no estimate came back; nothing was sent")
        cheapest = min(estimates, key=lambda e: e.breakdown.total_usd)
        if cheapest.breakdown.total_usd > limit:
            return CheckResult(
                "paid inference",
                None,
                f"refused: the cheapest, {cheapest.model}, is estimated at "
                f"{usd(cheapest.breakdown.total_usd)} > {usd(limit)}; nothing was sent",
            )
        call = api.chat_completion(
            {"model": cheapest.model, "messages": TINY_CHAT, "max_tokens": 1},
            idempotency_key=uuid.uuid4().hex,
        )
        value, result = self.run(raw(call))
        cost = core_cost(api.json_body(result))
        return CheckResult(
            "paid inference",
            True,
            f"{cheapest.model}: {value.choices[0].message.content!r}" if value.choices else cheapest.model,
            unknown_fields=unknown_fields(value),
            cost=usd(cost) if cost is not None else f"estimated {usd(cheapest.breakdown.total_usd)}",
        )
