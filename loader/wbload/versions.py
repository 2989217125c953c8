"""How rgsync orders recipe versions (MAJOR.MINOR.PATCH; 99.99.99 above all)."""

from __future__ import annotations

ALWAYS_NEWER = "99.99.99"  # rgsync's "newer than anything" version


def version_key(version: str | None) -> tuple[int, ...]:
    """Sort key for versions as rgsync compares them; no version sorts first."""
    if version is None:
        return (-1,)
    if version == ALWAYS_NEWER:
        return (1 << 30,)
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)
