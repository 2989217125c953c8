"""Masking: a password is replaced where it stands in a URL's credentials, nowhere else."""

from __future__ import annotations

from wbload.redact import mask_url, redact


def test_a_short_password_masks_only_the_url_credentials() -> None:
    text = ("recipes/movies.py: no such recipe file; cannot reach mongodb://app:p@db:27017/x "
            "or redis://:p@cache:6379")
    assert redact(text, ["p"]) == (
        "recipes/movies.py: no such recipe file; cannot reach mongodb://app:****@db:27017/x "
        "or redis://:****@cache:6379")


def test_a_password_with_url_specials_is_masked_encoded_or_not() -> None:
    text = "auth failed for mongodb://u:p%40ss@h:1 (mongodb://u:p@ss@h:2)"
    assert redact(text, ["p@ss"]) == "auth failed for mongodb://u:****@h:1 (mongodb://u:****@h:2)"


def test_a_password_outside_a_url_is_left_and_other_passwords_too() -> None:
    assert redact("user pw logged in", ["pw"]) == "user pw logged in"
    assert redact("mongodb://u:other@h", ["pw"]) == "mongodb://u:other@h"
    assert redact("nothing", [None, ""]) == "nothing"


def test_mask_url() -> None:
    assert mask_url("mongodb://u:pw@h:1/db?w=1") == "mongodb://u:****@h:1/db?w=1"
    assert mask_url("mongodb://h:1") == "mongodb://h:1"
