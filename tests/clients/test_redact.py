"""Credentials never survive redaction: presigned signatures, bearer tokens, keys."""

from __future__ import annotations

import pytest

from airflow_provider_edgeinfer.clients.redact import REDACTED, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://bucket.s3.amazonaws.com/up/file.wav?X-Amz-Signature=abc123&X-Amz-Expires=900",
            "https://bucket.s3.amazonaws.com/up/file.wav?***",
        ),
        ("https://user:pa55word@api.example.com/v1/x", "https://api.example.com/v1/x"),
        (
            "http://127.0.0.1:8080/_uploads/upl_1?expires=1&signature=deadbeef",
            "http://127.0.0.1:8080/_uploads/upl_1?***",
        ),
        ("https://api.example.com/v1/x#frag-token", "https://api.example.com/v1/x"),
        ("https://api.example.com/v1/x", "https://api.example.com/v1/x"),
        ("http://[::1]:8080/theta?sig=1", "http://[::1]:8080/theta?***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_keeps_the_signature_or_password() -> None:
    out = redact_url("https://me:hunter22@h.example.com/p?signature=s3cr3tsig&expires=9")
    assert "s3cr3tsig" not in out
    assert "hunter22" not in out
    assert "me@" not in out


def test_redact_url_unparsable() -> None:
    assert redact_url("http://[::1/x?sig=abc") == REDACTED


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer sk-live-abcdef123456",
        "authorization: bearer eyJhbGciOi.JIUzI1NiJ9.payload",
        "header was BEARER abc/def+ghi==",
    ],
)
def test_redact_text_masks_bearer_tokens(text: str) -> None:
    out = redact_text(text)
    assert REDACTED in out
    for secret in ("sk-live-abcdef123456", "eyJhbGciOi", "abc/def+ghi=="):
        assert secret not in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("api_key=AKIA1234567", "AKIA1234567"),
        ("https://x/y?apikey=zzz999&page=2", "zzz999"),
        ('{"token": "tok_abcdef", "ok": true}', "tok_abcdef"),
        ('{"secret":"shhh-0001"}', "shhh-0001"),
        ("password: p@ssw0rd!", "p@ssw0rd!"),
        ("X-Amz-Signature=f00dfeed&X-Amz-Date=1", "f00dfeed"),
        ("url?expires=12&signature=beefcafe", "beefcafe"),
        ("x-theta-api-key: k-123456789", "k-123456789"),
        ("access_token=at-98765", "at-98765"),
    ],
)
def test_redact_text_masks_key_value_secrets(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert REDACTED in out


def test_redact_text_keeps_harmless_text() -> None:
    text = "page=2 state=processing request infr_rqst_abc failed: No instances available"
    assert redact_text(text) == text


def test_redact_text_masks_known_secret_values_anywhere() -> None:
    out = redact_text(
        "the vendor echoed mykey-0123456789 back, and mysecret-xyz too", ("mykey-0123456789", "mysecret-xyz")
    )
    assert "mykey-0123456789" not in out
    assert "mysecret-xyz" not in out
    assert out.count(REDACTED) == 2


def test_redact_text_ignores_empty_and_tiny_secrets() -> None:
    # A one-letter "secret" would shred every message; empty ones must not loop or crash.
    assert redact_text("a b c", ("", "a")) == "a b c"
