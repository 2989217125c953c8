"""Keep secrets out of everything wbload prints."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

MASK = "****"


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by ****."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def url_password(url: str) -> str | None:
    """The password inside `url`, if it has one."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact(text: str, secrets: Sequence[str | None]) -> str:
    """`text` with every non-empty secret replaced by ****."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
