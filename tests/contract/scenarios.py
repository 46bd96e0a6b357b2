"""How to make the emulator give each contract answer: one function per fixture ``emulator`` name.

Each function drives the emulator the way the provider would (calls built by the client's API
class), bringing it to the state the fixture shows (a pending request, a finished batch...), and
returns the raw answer of the endpoint the fixture stands for.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx

from airflow_provider_edgeinfer.emulator.state import Timing
from tests.contract.harness import Emulated

Scenario = Callable[[Emulated], httpx.Response]
SCENARIOS: dict[str, dict[str, Scenario]] = {"theta": {}, "octoai": {}, "infrai": {}, "omnitensor": {}}

WHISPER_INPUT = {"audio_filename": "upl_k3v9x2m8q4w7e1r5t6y0", "language": "en"}
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def scenario(vendor: str, name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[vendor][name] = fn
        return fn

    return register


def ok_json(response: httpx.Response) -> Any:
    assert response.is_success, f"HTTP {response.status_code}: {response.text[:500]}"
    return response.json()


# -- Theta ------------------------------------------------------------------------------------


def theta_create(emu: Emulated, alias: str = "whisper", input: dict[str, Any] | None = None) -> str:
    body = ok_json(emu.send(emu.api.create_request(alias, input or WHISPER_INPUT)))
    return str(body["body"]["infer_requests"][0]["id"])


@scenario("theta", "list_services")
def _theta_services(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.list_services(page=0, number=1))


@scenario("theta", "create_pending")
def _theta_create_pending(emu: Emulated) -> httpx.Response:
    emu.state.timing["theta"] = Timing(queued=600.0, running=1.0)
    return emu.send(emu.api.create_request("whisper", WHISPER_INPUT))


@scenario("theta", "get_success")
def _theta_get(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.get_request(theta_create(emu)))


@scenario("theta", "get_llm")
def _theta_get_llm(emu: Emulated) -> httpx.Response:
    chat = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 16}
    return emu.send(emu.api.get_request(theta_create(emu, "llama_3_1_70b", chat)))


@scenario("theta", "list_requests")
def _theta_list(emu: Emulated) -> httpx.Response:
    theta_create(emu)
    return emu.send(emu.api.list_requests("prj_emulator", page=0, number=50))


@scenario("theta", "presigned_urls")
def _theta_presign(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.presigned_urls("whisper", input_fields=["audio_filename"]))


@scenario("theta", "cancel")
def _theta_cancel(emu: Emulated) -> httpx.Response:
    emu.state.timing["theta"] = Timing(queued=600.0, running=1.0)
    return emu.send(emu.api.cancel_request(theta_create(emu)))


@scenario("theta", "error_unauthorized")
def _theta_401(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.get_request(theta_create(emu)), key="not-the-key")


@scenario("theta", "error_not_found")
def _theta_404(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.get_request("infr_rqst_" + "0" * 26))


@scenario("theta", "error_no_capacity")
def _theta_409(emu: Emulated) -> httpx.Response:
    emu.state.scripted["theta"].append({"kind": "5xx", "status": 409, "path": "/infer_request"})
    return emu.send(emu.api.create_request("whisper", WHISPER_INPUT))


@scenario("theta", "error_quota")
def _theta_429(emu: Emulated) -> httpx.Response:
    emu.state.scripted["theta"].append({"kind": "429", "path": "/infer_request"})
    return emu.send(emu.api.create_request("whisper", WHISPER_INPUT))


# -- OctoAI -------------------------------------------------------------------------------------

SDXL = {"prompt": "a lighthouse at dawn", "width": 64, "height": 64}


def octoai_submit(emu: Emulated) -> str:
    return str(ok_json(emu.send(emu.api.infer_async("generate/sdxl", SDXL)))["response_id"])


@scenario("octoai", "generate_image")
def _octo_image(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.generate_image("sdxl", SDXL))


@scenario("octoai", "generate_image_removed")
def _octo_removed(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.generate_image("sdxl", {**SDXL, "prompt": "removed-for-safety"}))


@scenario("octoai", "generate_video")
def _octo_video(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.generate_video({"image": PNG_1X1}))


@scenario("octoai", "infer_async")
def _octo_async(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.infer_async("generate/sdxl", SDXL))


@scenario("octoai", "infer_async_deployment")
def _octo_async_deployment(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.infer_async("whisper", emu.api.whisper_input(b"RIFF\x24\x00\x00\x00WAVE")))


@scenario("octoai", "poll_pending")
def _octo_pending(emu: Emulated) -> httpx.Response:
    emu.state.timing["octoai"] = Timing(queued=600.0, running=1.0)
    return emu.send(emu.api.poll(octoai_submit(emu)))


@scenario("octoai", "poll_running")
def _octo_running(emu: Emulated) -> httpx.Response:
    emu.state.timing["octoai"] = Timing(queued=0.0, running=600.0)
    return emu.send(emu.api.poll(octoai_submit(emu)))


@scenario("octoai", "poll_completed")
def _octo_completed(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.poll(octoai_submit(emu)))


@scenario("octoai", "poll_failed")
def _octo_failed(emu: Emulated) -> httpx.Response:
    emu.state.faults["octoai"].job_failure_rate = 1.0
    return emu.send(emu.api.poll(octoai_submit(emu)))


@scenario("octoai", "poll_not_found")
def _octo_poll_404(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.poll("0000000000-00000"))


@scenario("octoai", "get_response")
def _octo_response(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.get_response(octoai_submit(emu)))


@scenario("octoai", "get_response_expired")
def _octo_expired(emu: Emulated) -> httpx.Response:
    emu.state.octoai_retention_seconds = 0.0
    return emu.send(emu.api.get_response(octoai_submit(emu)))


@scenario("octoai", "transcribe")
def _octo_transcribe(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.transcribe("whisper", b"RIFF\x24\x00\x00\x00WAVE"))


@scenario("octoai", "chat_completions")
def _octo_chat(emu: Emulated) -> httpx.Response:
    messages = [{"role": "user", "content": "Say hi"}]
    return emu.send(emu.api.chat_completions("meta-llama-3.1-8b-instruct", messages, max_tokens=16))


@scenario("octoai", "list_text_models")
def _octo_models(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.list_text_models())


@scenario("octoai", "error_validation")
def _octo_422(emu: Emulated) -> httpx.Response:
    # The client refuses this body before sending; what the server says is sent by hand.
    key = emu.state.keys["octoai"]
    body = {"prompt": "a lighthouse", "steps": 500}
    return emu.raw("POST", "/generate/sdxl", json=body, headers={"Authorization": f"Bearer {key}"})


@scenario("octoai", "error_policy")
def _octo_policy(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.infer("generate/sdxl", {**SDXL, "prompt": "violates-policy"}))


@scenario("octoai", "error_unauthorized")
def _octo_401(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.poll("0000000000-00000"), key="not-the-token")


@scenario("octoai", "error_rate_limited")
def _octo_429(emu: Emulated) -> httpx.Response:
    emu.state.scripted["octoai"].append({"kind": "429", "path": "/generate"})
    return emu.send(emu.api.infer("generate/sdxl", SDXL))


# -- infrai -------------------------------------------------------------------------------------

CHAT = [{"role": "user", "content": "Say hi"}]
CHAT_ITEM = {"capability": "chat.completions", "body": {"model": "deepseek-chat", "messages": CHAT}}


def infrai_batch(emu: Emulated, items: int = 2) -> str:
    requests = [{**CHAT_ITEM, "custom_id": f"item-{i}"} for i in range(items)]
    return str(ok_json(emu.send(emu.api.batch_submit(requests)))["data"]["batch_id"])


@scenario("infrai", "chat_completion")
def _ifr_chat(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.chat_completion({"model": "gpt-4o-mini", "messages": CHAT}))


@scenario("infrai", "embeddings")
def _ifr_embeddings(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.embeddings({"model": "text-embedding-3-small", "input": "hello"}))


@scenario("infrai", "image_generation")
def _ifr_images(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.image_generation({"prompt": "a lighthouse", "size": "64x64"}))


@scenario("infrai", "transcription_json")
def _ifr_transcription(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.transcription(b"RIFF\x24\x00\x00\x00WAVE", model="whisper-1"))


@scenario("infrai", "transcription_text")
def _ifr_transcription_text(emu: Emulated) -> httpx.Response:
    return emu.send(
        emu.api.transcription(b"RIFF\x24\x00\x00\x00WAVE", model="whisper-1", response_format="text")
    )


@scenario("infrai", "speech")
def _ifr_speech(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.speech({"model": "tts-1", "input": "hello", "voice": "alloy"}))


@scenario("infrai", "list_models")
def _ifr_models(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.list_models())


@scenario("infrai", "batch_submit")
def _ifr_submit(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_submit([CHAT_ITEM]))


@scenario("infrai", "batch_status")
def _ifr_status(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_status(infrai_batch(emu)))


@scenario("infrai", "batch_results")
def _ifr_results(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_results(infrai_batch(emu), limit=1))


@scenario("infrai", "batch_results_failed")
def _ifr_results_failed(emu: Emulated) -> httpx.Response:
    emu.state.faults["infrai"].job_failure_rate = 1.0
    return emu.send(emu.api.batch_results(infrai_batch(emu, 1)))


@scenario("infrai", "batch_list")
def _ifr_list(emu: Emulated) -> httpx.Response:
    infrai_batch(emu)
    return emu.send(emu.api.batch_list())


@scenario("infrai", "batch_cancel")
def _ifr_cancel(emu: Emulated) -> httpx.Response:
    emu.state.timing["infrai"] = Timing(queued=600.0, running=1.0)
    return emu.send(emu.api.batch_cancel(infrai_batch(emu)))


@scenario("infrai", "batch_export")
def _ifr_export(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_export(infrai_batch(emu), format="jsonl"))


@scenario("infrai", "batch_set_retention")
def _ifr_retention(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_set_retention(infrai_batch(emu), 7))


@scenario("infrai", "cost_estimate")
def _ifr_estimate(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.cost_estimate(CHAT, model="deepseek-chat"))


@scenario("infrai", "cost_compare")
def _ifr_compare(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.cost_compare(CHAT, models=["deepseek-chat", "gpt-4o-mini"]))


@scenario("infrai", "tokens_count")
def _ifr_tokens(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.tokens_count(CHAT, model="deepseek-chat"))


@scenario("infrai", "rerank")
def _ifr_rerank(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.rerank("red fox", ["a red fox", "a blue whale"], top_n=1))


@scenario("infrai", "image_upscale")
def _ifr_upscale(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.image_upscale(PNG_1X1, factor=2))


@scenario("infrai", "tts_voices")
def _ifr_voices(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.tts_voices(limit=1))


@scenario("infrai", "voice_session")
def _ifr_voice_session(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.voice_session(voice="alloy", ttl_seconds=60))


@scenario("infrai", "account_topup")
def _ifr_topup(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.account_topup(10))


@scenario("infrai", "error_insufficient_credit")
def _ifr_402(emu: Emulated) -> httpx.Response:
    emu.state.tables["infrai.config"]["credit_usd"] = 0.0
    return emu.send(emu.api.batch_submit([CHAT_ITEM]))


@scenario("infrai", "error_not_found")
def _ifr_404(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.batch_status("batch_" + "0" * 24))


@scenario("infrai", "error_rate_limited")
def _ifr_429(emu: Emulated) -> httpx.Response:
    emu.state.scripted["infrai"].append({"kind": "429", "path": "/batch/status"})
    return emu.send(emu.api.batch_status("batch_" + "0" * 24))


@scenario("infrai", "error_core_unauthorized")
def _ifr_401(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.list_models(), key="ifr_pk_proj_wrong")


# -- OmniTensor ---------------------------------------------------------------------------------


def omnitensor_token(emu: Emulated) -> str:
    body = {"api_key": emu.state.keys["omnitensor"], "secret": emu.state.omnitensor_secret}
    return str(ok_json(emu.raw("POST", "/auth/token", json=body))["token"])


@scenario("omnitensor", "token")
def _omni_token(emu: Emulated) -> httpx.Response:
    body = {"api_key": emu.state.keys["omnitensor"], "secret": emu.state.omnitensor_secret}
    return emu.raw("POST", "/auth/token", json=body)


@scenario("omnitensor", "token_refused")
def _omni_token_refused(emu: Emulated) -> httpx.Response:
    return emu.raw("POST", "/auth/token", json={"api_key": emu.state.keys["omnitensor"], "secret": "wrong"})


@scenario("omnitensor", "upload_model")
def _omni_upload(emu: Emulated) -> httpx.Response:
    data = b"\x00\x01\x02\x03\x04\x05"
    call = emu.api.upload_model_from(
        lambda: io.BytesIO(data), len(data), "tiny.bin", "tiny", framework="pytorch", version="1.0"
    )
    return emu.send(call)


@scenario("omnitensor", "list_models")
def _omni_models(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.list_models(page=1, limit=50))


@scenario("omnitensor", "inference")
def _omni_inference(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.inference("sentiment-v1", {"text": "great results"}))


@scenario("omnitensor", "allocate_compute")
def _omni_allocate(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.allocate_compute("A100", gpu_count=1, duration_hours=2))


def omnitensor_dataset(emu: Emulated) -> httpx.Response:
    return emu.send(
        emu.api.upload_dataset(io.BytesIO(b"a,b\n1,2\n"), "tiny", description="two rows", format="csv")
    )


@scenario("omnitensor", "upload_dataset")
def _omni_dataset(emu: Emulated) -> httpx.Response:
    return omnitensor_dataset(emu)


@scenario("omnitensor", "dataset_metadata")
def _omni_metadata(emu: Emulated) -> httpx.Response:
    dataset_id = ok_json(omnitensor_dataset(emu))["dataset_id"]
    return emu.send(emu.api.dataset_metadata(dataset_id))


@scenario("omnitensor", "balance")
def _omni_balance(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.balance())


@scenario("omnitensor", "transfer")
def _omni_transfer(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.transfer("acct_other", "10.00", idempotency_key="t-1"))


@scenario("omnitensor", "error_model_not_found")
def _omni_404(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.inference("abc123", {"text": "hi"}))


@scenario("omnitensor", "error_insufficient_balance")
def _omni_402(emu: Emulated) -> httpx.Response:
    return emu.send(emu.api.transfer("acct_other", "99999.00"))


@scenario("omnitensor", "error_no_capacity")
def _omni_503(emu: Emulated) -> httpx.Response:
    omnitensor_token(emu)  # the exchange itself must not meet the fault
    emu.state.scripted["omnitensor"].append({"kind": "5xx", "status": 503, "path": "/compute"})
    return emu.send(emu.api.allocate_compute("H100"))
