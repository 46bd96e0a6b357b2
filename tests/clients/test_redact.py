"""Credentials never survive redaction: each secret form is pinned to its exact redacted text."""

from __future__ import annotations

import logging

import httpx
import pytest

from airflow_provider_edgeinfer.clients import redact
from airflow_provider_edgeinfer.clients.redact import (
    MIN_SECRET_LENGTH,
    REDACTED,
    protect_httpx_log,
    redact_text,
    redact_url,
)

# -- redact_url -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://bucket.s3.amazonaws.com/up/file.wav?X-Amz-Signature=abc123&X-Amz-Expires=900",
            "https://bucket.s3.amazonaws.com/up/file.wav?***",
        ),
        ("https://user:pa55word@api.example.com/v1/x", "https://api.example.com/v1/x"),
        ("https://user@api.example.com:8443/v1/x?sig=1", "https://api.example.com:8443/v1/x?***"),
        (
            "http://127.0.0.1:8080/_uploads/upl_1?expires=1&signature=deadbeef",
            "http://127.0.0.1:8080/_uploads/upl_1?***",
        ),
        ("https://api.example.com/v1/x#frag-token", "https://api.example.com/v1/x"),
        ("https://api.example.com/v1/x", "https://api.example.com/v1/x"),
        ("https://api.example.com/v1/x?", "https://api.example.com/v1/x"),
        ("http://[::1]:8080/theta?sig=1", "http://[::1]:8080/theta?***"),
        ("http://[2001:db8::1]/p", "http://[2001:db8::1]/p"),
        ("https://u:p@[::1]/p?token=t", "https://[::1]/p?***"),
        ("/relative/path?sig=1", "/relative/path?***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", ["http://[::1/x?sig=abc", "http://h.example.com:99999/x?sig=abc"])
def test_redact_url_unparsable(url: str) -> None:
    assert redact_url(url) == REDACTED


def test_redact_url_never_keeps_the_signature_or_password() -> None:
    out = redact_url("https://me:hunter22@h.example.com/p?signature=s3cr3tsig&expires=9")
    assert out == "https://h.example.com/p?***"


# -- redact_text: every secret form, exact output --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # bearer tokens, with or without an Authorization header around them
        ("Authorization: Bearer sk-live-abcdef123456", "Authorization: Bearer ***"),
        ("authorization: bearer eyJhbGciOi.JIUzI1NiJ9.payload", "authorization: bearer ***"),
        ("header was BEARER abc/def+ghi== then", "header was BEARER *** then"),
        # other Authorization schemes: the credential after the scheme is masked, not the scheme
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("Authorization: Token tok_0123456789", "Authorization: Token ***"),
        ("authorization=sk-raw-1234", "authorization=***"),
        ('Proxy-Authorization: Digest username="u", response="9a8b7c"', "Proxy-Authorization: Digest ***"),
        ("Authorization: Basic abc\nnext: line", "Authorization: Basic ***\nnext: line"),
        ('{"Authorization": "Basic dXNlcjpw", "x": 1}', '{"Authorization": "Basic ***", "x": 1}'),
        ("{'authorization': 'Token abcd1234', 'x': 1}", "{'authorization': 'Token ***', 'x': 1}"),
        ('{"authorization": "raw-key-123"}', '{"authorization": "***"}'),
        # key=value and JSON secrets
        ("api_key=AKIA1234567&page=2", "api_key=***&page=2"),
        ("https://x/y?apikey=zzz999&page=2", "https://x/y?apikey=***&page=2"),
        ("api-key: k-1 ok", "api-key: *** ok"),
        ('{"api_key": "k-123456", "ok": true}', '{"api_key": "***", "ok": true}'),
        ("{'api_key': 'k-123456'}", "{'api_key': '***'}"),
        ("x-theta-api-key: k-123456789", "x-theta-api-key: ***"),
        ("X-Amz-Signature=f00dfeed&X-Amz-Date=1", "X-Amz-Signature=***&X-Amz-Date=1"),
        ("X-Amz-Security-Token=FQoGZXIvYXdz&a=1", "X-Amz-Security-Token=***&a=1"),
        ("url?se=2&sig=abc123%3D&sp=r", "url?se=2&sig=***&sp=r"),
        ("url?expires=12&signature=beefcafe", "url?expires=12&signature=***"),
        ('{"signature":"beefcafe"}', '{"signature":"***"}'),
        ("token=tok_1, next", "token=***, next"),
        ('{"token": "tok_abcdef", "ok": true}', '{"token": "***", "ok": true}'),
        ("access_token=at-98765", "access_token=***"),
        ("password: p@ssw0rd!", "password: ***"),
        ("PASSWORD=hunter2", "PASSWORD=***"),
        ('{"secret":"shhh-0001"}', '{"secret":"***"}'),
        ("client_secret = abc}", "client_secret = ***}"),
    ],
)
def test_redact_text_exact(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "page=2 state=processing request infr_rqst_abc failed: No instances available",
        "max_tokens=5 prompt_tokens: 7 design=1 tokens=9",
        "authorization failed: the key was refused",
        "signatures are checked",
    ],
)
def test_redact_text_keeps_harmless_text(text: str) -> None:
    assert redact_text(text) == text


def test_redact_text_masks_known_secret_values_anywhere() -> None:
    out = redact_text(
        "the vendor echoed mykey-0123456789 back, and mysecret-xyz too", ("mykey-0123456789", "mysecret-xyz")
    )
    assert out == "the vendor echoed *** back, and *** too"


def test_redact_text_masks_known_secrets_as_echoed_in_urls_and_json() -> None:
    secret = 'k+y/1="x"'
    text = 'raw k+y/1="x", url k%2By%2F1%3D%22x%22, json "k+y/1=\\"x\\""'
    assert redact_text(text, (secret,)) == 'raw ***, url ***, json "***"'


def test_redact_text_masks_the_longer_secret_first() -> None:
    # By length, not by text: "zzzz" sorts after "a-zzzz-b" yet must not cut it in three.
    assert redact_text("a-zzzz-b here", ("zzzz", "a-zzzz-b")) == "*** here"
    assert redact_text("tok-abcd-efgh here", ("tok-abcd", "tok-abcd-efgh")) == "*** here"


@pytest.mark.parametrize(
    "scheme",
    ["Bearer", "Basic", "Token", "Digest", "ApiKey", "Key", "HMAC", "AWS4-HMAC-SHA256", "Negotiate", "NTLM"],
)
def test_redact_text_keeps_each_known_authorization_scheme(scheme: str) -> None:
    assert redact_text(f"Authorization: {scheme} c2VjcmV0") == f"Authorization: {scheme} ***"
    assert (
        redact_text(f'{{"authorization": "{scheme.lower()} c2VjcmV0"}}')
        == f'{{"authorization": "{scheme.lower()} ***"}}'
    )


def test_redact_text_short_secrets() -> None:
    # A secret shorter than MIN_SECRET_LENGTH would shred every message; empty ones must not loop.
    assert MIN_SECRET_LENGTH == 4
    assert redact_text("a abc b", ("", "a", "abc")) == "a abc b"
    assert redact_text("a abcd b", ("abcd",)) == "a *** b"


# -- the httpx log filter -------------------------------------------------------------------------


def test_the_filter_is_installed_on_import_and_once() -> None:
    logger = logging.getLogger("httpx")
    assert redact._URL_FILTER in logger.filters  # importing the module was enough
    protect_httpx_log()
    protect_httpx_log()
    assert logger.filters.count(redact._URL_FILTER) == 1


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (httpx.URL("https://s3.example.com/o.png?X-Amz-Signature=f00d"), "https://s3.example.com/o.png?***"),
        ("https://u:pw@h.example.com/x", "https://h.example.com/x"),
        ("http://127.0.0.1:9/x?sig=1", "http://127.0.0.1:9/x?***"),
        ("ftp://h.example.com/x?sig=1", "ftp://h.example.com/x?sig=1"),
        (httpx.URL("https://h.example.com/x"), httpx.URL("https://h.example.com/x")),
        ("GET", "GET"),
        (200, 200),
    ],
)
def test_the_filter_cuts_queries_from_log_arguments(arg: object, expected: object) -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s "%s"', (arg, "x"), None)
    assert redact._URL_FILTER.filter(record) is True
    assert record.args == (expected, "x")


def test_the_filter_leaves_mapping_arguments_alone() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "%(url)s", None, None)
    record.args = {"url": "https://h.example.com/x?sig=1"}
    assert redact._URL_FILTER.filter(record) is True
    assert record.args == {"url": "https://h.example.com/x?sig=1"}


def test_the_filter_lets_records_without_arguments_through() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "plain ?sig=1", None, None)
    assert redact._URL_FILTER.filter(record) is True
    assert record.getMessage() == "plain ?sig=1"
