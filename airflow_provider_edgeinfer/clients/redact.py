"""Keep credentials out of text: presigned-URL signatures, bearer tokens, API keys.

Presigned URLs are bearer credentials (their query string is the signature), so any URL that may
reach a log line, an exception or XCom goes through :func:`redact_url` first.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SECRET_KEYS = re.compile(
    r'(?i)("?(?:api[_-]?key|secret|token|password|authorization|signature|sig|x-amz-signature)"?\s*[:=]\s*"?)'
    r'[^"&\s,}]+'
)


def redact_url(url: str) -> str:
    """The URL without its query string and user info: enough to say where, nothing to replay."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask bearer tokens, ``key=value`` secrets and any known secret value inside free text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_KEYS.sub(lambda m: m.group(1) + REDACTED, text)
