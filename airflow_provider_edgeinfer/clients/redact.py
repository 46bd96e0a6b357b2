"""Keep credentials out of text: presigned-URL signatures, bearer tokens, API keys.

Presigned URLs are bearer credentials (their query string is the signature), so any URL that may
reach a log line, an exception or XCom goes through :func:`redact_url` first. httpx logs every
request's full URL at INFO, and Airflow writes INFO into the task log: importing this module (which
the HTTP layer always does, through :mod:`~airflow_provider_edgeinfer.clients.core`) installs a
filter that cuts the query of every URL httpx logs.

A failed exchange is told in fixed words (:func:`describe_failure`): an HTTP library's own exception
text may quote the request's headers (the credential) or bytes the server chose.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from urllib.parse import quote, urlsplit, urlunsplit

from airflow_provider_edgeinfer.exceptions import RESPONSE_TOO_LARGE, EdgeInferError, UnexpectedResponseError

REDACTED = "***"

#: Known secrets shorter than this are not searched for: they would shred ordinary text.
MIN_SECRET_LENGTH = 4

_QUOTE = "[\"']?"
_SCHEME = r"(?:bearer|basic|token|digest|apikey|key|hmac|aws4-hmac-sha256|negotiate|ntlm)\s+"
# An Authorization value is masked whole (only a known scheme word is kept): a Basic, Token or
# Digest credential follows the scheme after a space and is as secret as a bearer token. A quoted
# value ends at its closing quote; an unquoted one (a header line) at the end of the line.
_AUTHORIZATION = re.compile(
    rf"(?i)({_QUOTE}(?:proxy-)?authorization{_QUOTE}\s*[:=]\s*)"
    rf"(?:([\"'])({_SCHEME})?[^\"'\r\n]+|({_SCHEME})?[^\r\n]+)"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# ``signature`` also covers ``X-Amz-Signature``; ``token`` covers ``access_token`` and
# ``X-Amz-Security-Token``; ``api[_-]?key`` covers ``x-theta-api-key``.
_SECRET_KEYS = re.compile(
    rf"(?i)({_QUOTE}(?:api[_-]?key|secret|token|password|signature|sig){_QUOTE}\s*[:=]\s*{_QUOTE})"
    r"[^\"'&\s,}]+"
)

# The same three shapes for vendor text, each with the value as group 2 (judged by _credential_like).
_VENDOR_AUTHORIZATION = re.compile(
    rf"(?i)({_QUOTE}(?:proxy-)?authorization{_QUOTE}\s*[:=]\s*{_QUOTE}(?:{_SCHEME})?)([^\s\"',;]+)"
)
_VENDOR_BEARER = re.compile(r"(?i)(bearer\s+)([^\s\"',;]+)")
_VENDOR_SECRET_KEYS = re.compile(
    rf"(?i)({_QUOTE}(?:api[_-]?key|secret|token|password|signature|sig){_QUOTE}\s*[:=]\s*{_QUOTE})([^\"'&\s,}}]+)"
)


def redact_url(url: str) -> str:
    """The URL without its query string and user info: enough to say where, nothing to replay."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def _forms(secret: str) -> list[str]:
    """A secret as it may be echoed: raw, percent-encoded (a URL) or escaped (a JSON string)."""
    return list(dict.fromkeys((secret, quote(secret, safe=""), json.dumps(secret)[1:-1])))


def redact_known(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask each known secret value (raw, percent-encoded or JSON-escaped), and nothing else."""
    # Longest first: a secret containing a shorter one must not leave its tail behind.
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        for form in _forms(secret):
            text = text.replace(form, REDACTED)
    return text


def _credential_like(value: str) -> bool:
    """A value that may be a credential, not a placeholder (``<token>``) or a word (``send``)."""
    if value.startswith(("<", "{", "[", "*")):
        return False
    return len(value) >= 20 or any(c.isdigit() for c in value)


def redact_vendor_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """A vendor's own words with known secrets masked, and credential-like values after a secret's name.

    Vendors name headers and placeholders in their messages ("send Authorization: Bearer <token>"):
    those stay as written, where :func:`redact_text` would shred them.
    """
    text = redact_known(text, secrets)

    def hide(match: re.Match[str]) -> str:
        value = match.group(2)
        return match.group(1) + (REDACTED if _credential_like(value) else value)

    for pattern in (_VENDOR_AUTHORIZATION, _VENDOR_BEARER, _VENDOR_SECRET_KEYS):
        text = pattern.sub(hide, text)
    return text


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask Authorization values, bearer tokens, ``key=value`` secrets and any known secret value.

    For text whose maker is unknown (an HTTP library's exception may quote the request's headers).
    """
    text = redact_known(text, secrets)
    text = _AUTHORIZATION.sub(
        lambda m: m.group(1) + (m.group(2) or "") + (m.group(3) or m.group(4) or "") + REDACTED, text
    )
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_KEYS.sub(lambda m: m.group(1) + REDACTED, text)


class _RedactLoggedURLs(logging.Filter):
    """Cuts the query of every URL in a log record's arguments (httpx: ``"HTTP Request: %s %s"``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_without_query(a) for a in record.args)
        return True


def _without_query(value: object) -> object:
    # httpx passes an ``httpx.URL``; judging it by its text keeps httpx out of this light module.
    text = str(value)
    if text.startswith(("http://", "https://")) and ("?" in text or "@" in text):
        return redact_url(text)
    return value


_URL_FILTER = _RedactLoggedURLs()


def protect_httpx_log() -> None:
    """Install the filter on httpx's logger (idempotent; done when this module is imported)."""
    logging.getLogger("httpx").addFilter(_URL_FILTER)  # addFilter skips a filter already there


protect_httpx_log()


# -- describing a failed exchange ---------------------------------------------------------------

_REASONS: list[tuple[str, str]] = [
    # (class name in the exception's MRO, fixed words); the first match wins, so specific first.
    ("ConnectTimeout", "connecting timed out"),
    ("ConnectionTimeoutError", "connecting timed out"),
    ("PoolTimeout", "no free connection in the pool in time"),
    ("ReadTimeout", "reading the answer timed out"),
    ("SocketTimeoutError", "reading the answer timed out"),
    ("ServerTimeoutError", "the server did not answer in time"),
    ("WriteTimeout", "sending the request timed out"),
    ("ProxyError", "the proxy refused or failed the request"),
    ("ClientProxyConnectionError", "the proxy could not be reached"),
    ("ClientHttpProxyError", "the proxy refused or failed the request"),
    ("ClientConnectorCertificateError", "the server's TLS certificate was refused"),
    ("ClientConnectorSSLError", "the TLS handshake failed"),
    ("ClientSSLError", "the TLS handshake failed"),
    ("ClientConnectorDNSError", "the host name did not resolve"),
    ("ClientConnectorError", "could not connect"),
    ("ConnectError", "could not connect"),
    ("ServerDisconnectedError", "the server closed the connection"),
    ("ClientPayloadError", "the answer's body was cut or malformed"),
    ("ClientResponseError", "the answer was not valid HTTP (bad status line or oversized header)"),
    ("RemoteProtocolError", "the answer was not valid HTTP"),
    ("LineTooLong", "the answer was not valid HTTP (a line too long)"),
    ("HttpProcessingError", "the answer was not valid HTTP"),
    ("LocalProtocolError", "the request could not be encoded as HTTP"),
    ("DecodingError", "the answer's content-encoding could not be decoded"),
    ("UnsupportedProtocol", "the URL's scheme is not supported"),
    ("InvalidURL", "the URL is not valid"),
    ("InvalidUrlClientError", "the URL is not valid"),
    ("NonHttpUrlClientError", "the URL's scheme is not supported"),
    ("TooManyRedirects", "too many redirects"),
    ("ReadError", "the connection broke while reading the answer"),
    ("WriteError", "the connection broke while sending the request"),
    ("ClientOSError", "a socket error"),
    ("ServerConnectionError", "the connection to the server failed"),
    ("ClientConnectionError", "the connection failed"),
    ("TimeoutException", "timed out"),
    ("TimeoutError", "timed out"),
    ("SSLError", "a TLS error"),
]


def deadline_reason(seconds: float, extra: str) -> str:
    return f"the {extra} of {seconds:g} s passed before the answer ended"


def too_large(what: str, url: str, limit: int, extra: str, *, status: int | None = None) -> EdgeInferError:
    return UnexpectedResponseError(
        f"{what} from {redact_url(url)} exceeds {extra} ({limit} bytes decoded); it was abandoned",
        http_status=status,
        code=RESPONSE_TOO_LARGE,
        hint=f"Raise the connection's {extra} extra if such an answer is expected.",
    )


#: Packages whose exceptions are failures of an exchange (not bugs in the caller).
_NETWORK_PACKAGES = frozenset({"httpx", "httpcore", "h11", "anyio", "aiohttp", "yarl", "multidict", "ssl"})


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` came from the network or an HTTP stack, rather than from a bug of ours."""
    package = type(exc).__module__.partition(".")[0]
    return isinstance(exc, OSError | TimeoutError) or package in _NETWORK_PACKAGES


def _innermost(exc: BaseException) -> BaseException:
    """The aiohttp error under an httpx one (httpx-aiohttp maps them coarsely)."""
    cause = exc.__cause__
    if type(exc).__module__.startswith("httpx") and type(cause).__module__.startswith("aiohttp"):
        return cause  # type: ignore[return-value]
    return exc


def safe_reason(exc: BaseException) -> str:
    """Fixed words for what went wrong: nothing from the exception's own text."""
    exc = _innermost(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, words in _REASONS:
        if name in names:
            if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
                return f"{words} (errno {exc.errno})"
            return words
    if isinstance(exc, OSError) and exc.errno:
        return f"a socket error (errno {exc.errno})"
    return "the exchange failed"


def describe_failure(
    exc: BaseException, method: str, url: str, secrets: tuple[str, ...] = (), reason: str | None = None
) -> str:
    """``ReadTimeout on GET https://host/path: reading the answer timed out``, from safe parts only."""
    name = type(_innermost(exc)).__name__
    text = f"{name} on {method} {redact_url(url)}: {reason or safe_reason(exc)}"
    return redact_text(text, secrets)
