"""Keep secrets out of everything wbload prints."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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
    """`text` with every non-empty secret replaced by **** where it stands as a URL's
    password (`scheme://user:<secret>@`, percent-encoded or not); elsewhere a short
    password would mask parts of ordinary words."""
    for secret in secrets:
        if not secret:
            continue
        for variant in dict.fromkeys([secret, unquote(secret), quote(unquote(secret), safe="")]):
            pattern = r"(://[^\s/:@'\"]*:)" + re.escape(variant) + "(@)"
            text = re.sub(pattern, lambda m: m.group(1) + MASK + m.group(2), text)
    return text
