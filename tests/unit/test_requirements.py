"""Requirement specifiers as pip reads them: which deploys would swap an installed package."""

from __future__ import annotations

import pytest

from wbload.requirements import InstalledRequirement, pin, version_changes

INSTALLED = [InstalledRequirement("rgsync", ()), InstalledRequirement("pymongo==4.7.3", ())]


@pytest.mark.parametrize(("requirement", "expected"), [
    ("pymongo==4.7.3", ("pymongo", "4.7.3")),
    ("pymongo[srv]==4.8.0", ("pymongo", "4.8.0")),
    ("PyMongo === 4.7.3", ("pymongo", "4.7.3")),
    ('pymongo==4.6.3; python_version >= "3.7"', ("pymongo", "4.6.3")),
    ("Py_Mongo.x==1.0", ("py-mongo-x", "1.0")),
    ("pymongo>=4.7", None),
    ("pymongo==4.*", None),
    ("pymongo", None),
    ("not a requirement ==", None),
])
def test_pin(requirement: str, expected: tuple[str, str] | None) -> None:
    assert pin(requirement) == expected


@pytest.mark.parametrize(("wanted", "change"), [
    ("pymongo[srv]==4.8.0", ("pymongo", "4.7.3", "4.8.0")),    # extras do not hide a change
    ("pymongo===4.6.3", ("pymongo", "4.7.3", "4.6.3")),
    ('pymongo==4.6.3; python_version >= "3"', ("pymongo", "4.7.3", "4.6.3")),
    ("pymongo>=4.8", ("pymongo", "4.7.3", ">=4.8")),
    ("pymongo<4", ("pymongo", "4.7.3", "<4")),
    ("PyMongo==4.7.3", None),
    ("pymongo[srv]==4.7.3", None),
    ("pymongo>=4.7,<5", None),
    ("pymongo", None),
    ("dnspython==2.3.0", None),                                  # not installed before
])
def test_version_changes(wanted: str, change: tuple[str, str, str] | None) -> None:
    assert version_changes(["rgsync", wanted], INSTALLED) == ([change] if change else [])
