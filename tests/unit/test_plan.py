"""What deploy decides from what is registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbload.parameters import resolve
from wbload.plan import Action, plan_deploy
from wbload.recipe import load_recipe
from wbload.registrations import Registration
from wbload.render import RenderedRecipe, render
from wbload.versions import version_key

MOVIES = Path(__file__).resolve().parents[2] / "recipes" / "movies.py"


def rendered(version: str = "1.0.0", name: str = "MoviesWriteBehind") -> RenderedRecipe:
    recipe = load_recipe(MOVIES)
    return render(recipe, resolve(recipe, {"VERSION": version, "NAME": name}))


def pair(version: str | None, name: str = "MoviesWriteBehind") -> list[Registration]:
    return [
        Registration(id="x-1", reader="KeysReader", name=f"{name}.KeysReader",
                     version=version, mode="sync"),
        Registration(id="x-2", reader="StreamReader", name=f"{name}.StreamReader",
                     version=version, mode="async_local"),
    ]


def test_install_when_nothing_registered() -> None:
    assert plan_deploy(rendered(), []).action is Action.INSTALL


def test_same_version_is_up_to_date() -> None:
    plan = plan_deploy(rendered("1.0.0"), pair("1.0.0"))
    assert plan.action is Action.UP_TO_DATE and not plan.sends_recipe


def test_same_version_with_force_replaces() -> None:
    plan = plan_deploy(rendered("1.0.0"), pair("1.0.0"), force=True)
    assert plan.action is Action.REPLACE
    assert [r.id for r in plan.unregister_first] == ["x-1", "x-2"]


@pytest.mark.parametrize(("registered", "ours"), [("1.0.0", "1.0.1"), ("1.9.0", "1.10.0"),
                                                  (None, "0.0.1")])
def test_older_registered_version_upgrades(registered: str | None, ours: str) -> None:
    plan = plan_deploy(rendered(ours), pair(registered))
    assert plan.action is Action.UPGRADE
    assert plan.unregister_first == []  # rgsync unregisters the old pair itself


@pytest.mark.parametrize("registered", ["2.0.0", "1.0.10", "99.99.99"])
def test_newer_registered_version_is_refused_unless_forced(registered: str) -> None:
    plan = plan_deploy(rendered("1.0.9"), pair(registered))
    assert plan.action is Action.REFUSE and "--force" in plan.reason
    assert plan_deploy(rendered("1.0.9"), pair(registered), force=True).action is Action.REPLACE


def test_half_registered_pair_is_replaced() -> None:
    plan = plan_deploy(rendered("1.0.0"), pair("1.0.0")[:1])
    assert plan.action is Action.REPLACE and "half registered" in plan.reason


def test_name_that_rgsync_would_confuse_is_refused() -> None:
    plan = plan_deploy(rendered(name="Movies"), pair("1.0.0", name="MoviesWriteBehind"))
    assert plan.action is Action.REFUSE and "another NAME" in plan.reason


def test_version_order_is_numeric() -> None:
    assert version_key("1.10.0") > version_key("1.9.9") > version_key(None)
    assert version_key("99.99.99") > version_key("1000.0.0")
