"""The `wbload` command line: parses options, calls the library, prints. Nothing more."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import redis

from . import __version__
from .connection import RedisTarget
from .dead_letters import list_dead_letters, purge_dead_letters, retry_dead_letters
from .deploy import apply, plan, pyexecute_args
from .drain import Draining, wait_for_drain
from .errors import EXIT_CODE_HELP, ExitCode, UsageError, WbloadError, WrongPymongo
from .gears_errors import one_line
from .interpreter import fix_for, pin_requirement
from .parameters import from_environment, parse_assignments
from .plan import Action
from .prune import PruneOutcome, prune
from .redact import redact, url_password
from .registrations import read_registrations, write_behinds
from .render import RenderedRecipe, render_files
from .requirements import (
    export_requirement,
    import_requirements,
    install_requirements,
    write_order,
)
from .resync import keys_with_prefix, resync, resync_prefix, resync_stream
from .server import ready_client
from .status import StatusReport, WriteBehindStatus, collect_status
from .undeploy import undeploy
from .verify import Step, mongo_url_for, verify

EXIT_CODES = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {text}" for code, text in EXIT_CODE_HELP.items()
)


class WbloadGroup(click.Group):
    """Turns library errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except WbloadError as e:
            _fail(ctx, str(e), e.exit_code)
        except redis.RedisError as e:
            _fail(ctx, f"Redis error: {e}", ExitCode.REDIS_UNREACHABLE
                  if isinstance(e, (redis.ConnectionError, redis.TimeoutError))
                  else ExitCode.INTERNAL)
        except Exception as e:  # noqa: BLE001 - last resort: one line, no traceback, no secret
            if os.environ.get("WBLOAD_DEBUG"):
                raise
            _fail(ctx, f"internal error: {type(e).__name__}: {e} "
                  "(a bug; WBLOAD_DEBUG=1 shows the traceback)", ExitCode.INTERNAL)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    secrets = ctx.meta.get("wbload.secrets", [])
    click.echo(f"wbload: error: {redact(message, secrets)}", err=True)
    ctx.exit(int(code))


def _secret(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """Option callback: remember a URL's password so no message can print it."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, str):
            password = url_password(item.partition("=")[2] or item)
            if password:
                ctx.meta.setdefault("wbload.secrets", []).append(password)
    return value


def redis_options(command: Callable) -> Callable:
    """--redis-url and TLS options, shared by every command that talks to Redis."""
    options = [
        click.option("--redis-url", envvar="REDIS_URL", default="redis://localhost:6379",
                     show_default=True, callback=_secret, show_envvar=True,
                     help="redis://[user:password@]host:port[/db], rediss:// for TLS."),
        click.option("--tls-ca-cert", envvar="REDIS_TLS_CA_CERT", show_envvar=True,
                     type=click.Path(exists=True, dir_okay=False),
                     help="CA certificate to verify a rediss:// server."),
        click.option("--tls-cert", envvar="REDIS_TLS_CERT", show_envvar=True,
                     type=click.Path(exists=True, dir_okay=False),
                     help="Client certificate for mutual TLS."),
        click.option("--tls-key", envvar="REDIS_TLS_KEY", show_envvar=True,
                     type=click.Path(exists=True, dir_okay=False),
                     help="Client private key for mutual TLS."),
        click.option("--reply-timeout", type=click.FloatRange(min=1), default=300.0,
                     show_default=True,
                     help="Seconds to wait for one Redis reply (a first deploy installs "
                          "requirements)."),
        click.option("--protocol", type=click.Choice(["2", "3"]), default=None, hidden=True),
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, redis_url: str, tls_ca_cert: str | None, tls_cert: str | None,
                tls_key: str | None, reply_timeout: float, protocol: str | None,
                **kwargs: Any) -> Any:
        target = RedisTarget(redis_url, tls_ca_cert, tls_cert, tls_key, reply_timeout,
                             int(protocol) if protocol else None)
        return command(*args, target=target, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def recipe_options(command: Callable) -> Callable:
    """--mongo-url, --secret-key and --param, shared by render and deploy."""
    command = click.option(
        "--secret-key", metavar="KEY",
        help="Keep --mongo-url out of the recipe: deploy stores it in this Redis key (protect "
             "it with an ACL) and the recipe reads it there when it connects.")(command)
    command = click.option(
        "--param", "params", multiple=True, metavar="NAME=VALUE", callback=_secret,
        help="Set a recipe parameter (repeatable); also WBLOAD_PARAM_<NAME>.")(command)
    command = click.option(
        "--mongo-url", envvar="MONGODB_URL", show_envvar=True, callback=_secret,
        help="MongoDB URL as Redis will reach it; sets the recipe's MONGO_URL.")(command)
    return command


def render_recipes(paths: Sequence[str], mongo_url: str | None, params: Sequence[str],
                   secret_key: str | None = None) -> list[RenderedRecipe]:
    """The recipes rendered with the command line's and the environment's parameters."""
    return render_files(paths, parse_assignments(params), from_environment(os.environ),
                        mongo_url, secret_key)


@click.group(cls=WbloadGroup, epilog=EXIT_CODES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wbload")
def main() -> None:
    """Deploy and operate RedisGears write-behind recipes (Redis JSON -> MongoDB)."""


@main.command("render", epilog=EXIT_CODES)
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_options
def render_command(recipe: str, mongo_url: str | None, params: Sequence[str],
                   secret_key: str | None) -> None:
    """Print the text deploy would push (passwords masked)."""
    (rendered,) = render_recipes([recipe], mongo_url, params, secret_key)
    click.echo(rendered.masked_text, nl=False)
    click.echo(f"# REQUIREMENTS {' '.join(rendered.requirements)}", err=True)


@main.command("deploy", epilog=EXIT_CODES)
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@recipe_options
@redis_options
@click.option("--force", is_flag=True,
              help="Replace a newer or equal registered version.")
@click.option("--dry-run", is_flag=True, help="Show the plan; send nothing.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Wait up to SECONDS for Redis to accept connections and load its modules.")
@click.option("--requirements-from", type=click.Path(exists=True, file_okay=False),
              metavar="DIR", help="Import requirement zips from DIR first (offline hosts).")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=120.0, metavar="SECONDS",
              show_default=True,
              help="After an upgrade, wait this long for the old version to write what it has "
                   "left (the new version writes after it, so nothing is lost or reordered).")
def deploy_command(recipes: Sequence[str], mongo_url: str | None, params: Sequence[str],
                   secret_key: str | None, target: RedisTarget, force: bool, dry_run: bool,
                   wait: float, requirements_from: str | None, drain_timeout: float) -> None:
    """Register RECIPE(s) in Redis, unless the same version is there already."""
    rendered_recipes = render_recipes(recipes, mongo_url, params, secret_key)
    client = ready_client(target, wait=wait, primary=True)
    if requirements_from and not dry_run:
        for name in import_requirements(client, Path(requirements_from)):
            click.echo(f"{name}: imported", err=True)
    if secret_key and mongo_url and not dry_run:
        client.set(secret_key, mongo_url)
    for rendered in rendered_recipes:
        deploy_plan = plan(client, rendered, force=force)
        what = f"{rendered.name} {rendered.version}"
        if dry_run:
            sent = "RG.PYEXECUTE <recipe>" + "".join(f" {a}" for a in pyexecute_args(rendered)[2:])
            click.echo(f"{what}: would {deploy_plan.action.value} ({deploy_plan.reason})"
                       + (f"; would send {sent}" if deploy_plan.sends_recipe else ""))
            continue
        if deploy_plan.action is Action.UP_TO_DATE:
            click.echo(f"{what}: up to date (nothing sent)")
        else:
            if deploy_plan.sends_recipe:
                click.echo(f"{what}: {deploy_plan.action.value} ({deploy_plan.reason}) ...")
            outcome = apply(client, deploy_plan)
            ids = ", ".join(f"{r.reader} {r.id}" for r in outcome.registered.current) \
                if outcome.registered else ""
            click.echo(f"{what}: registered in {outcome.seconds:.1f}s ({ids})")
        # Also when up to date: a deploy killed during its drain left the older version's
        # readers registered.
        wait_for_drain(client, rendered.name, drain_timeout, _drain_progress(rendered.name))
        pinned = pin_requirement(rendered.requirements)
        if pinned:
            _report_prune(rendered.name, prune(client, target.client(decode_responses=False),
                                               pinned))


@main.command("status", epilog=EXIT_CODES)
@redis_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(target: RedisTarget, as_json: bool) -> None:
    """Show every write-behind: version, readers, counters, last error, backlog."""
    report = collect_status(ready_client(target))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_status(report)
    _warn_or_fail(report.warnings, report.errors)


def _print_status(report: StatusReport) -> None:
    if not report.write_behinds:
        click.echo("no write-behind registered")
    else:
        click.echo(_status_table(report.write_behinds))
    running = ", ".join(sorted({s.running or "none" for s in report.gears_pymongo}))
    for s in report.write_behinds:
        if s.pymongo_pin and running:
            click.echo(f"{s.name}: pins pymongo {s.pymongo_pin}; Gears' Python runs {running}")
        if s.dead_letters:
            click.echo(f"{s.name}: {s.dead_letters} change(s) rejected by Mongo, kept in "
                       f"{s.dead_letter_stream} (wbload dlq list {s.name})")
    for stream, waiting in report.orphan_streams.items():
        click.echo(f"orphan stream {stream}: {waiting} change(s) no registered reader will "
                   f"write (wbload resync NAME --stream {stream})")


def _warn_or_fail(warnings: Sequence[str], errors: Sequence[str]) -> None:
    """Warnings on stderr; the errors too, the last one with its exit code."""
    for warning in warnings:
        click.echo(f"wbload: warning: {warning}", err=True)
    for error in errors[:-1]:
        click.echo(f"wbload: error: {error}", err=True)
    if errors:
        raise WrongPymongo(errors[-1])


def _status_table(statuses: list[WriteBehindStatus]) -> str:
    rows = [["NAME", "VERSION", "KEYS", "READER", "MODE", "TRIGGERED", "OK", "FAILED",
             "ABORTED", "BACKLOG", "LAST ERROR"]]
    for s in statuses:
        readers = [(r, r.reader) for r in s.readers]
        readers += [(r, f"{r.reader} {r.version} (retiring)") for r in s.draining]
        for i, (r, label) in enumerate(readers):
            first = i == 0
            rows.append([
                s.name if first else "", (s.version or "-") if first else "",
                f"{s.key_prefix}:*" if first and s.key_prefix else "",
                label, r.mode, str(r.triggered), str(r.success), str(r.failures),
                str(r.aborted), "" if r.backlog is None else str(r.backlog),
                r.last_error or "-",
            ])
        if not s.complete:
            rows.append(["", "", "", "(missing a reader: deploy again to repair)"] + [""] * 7)
    return _table(rows)


@main.command("verify", epilog=EXIT_CODES)
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@recipe_options
@redis_options
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds each step (insert, update, delete) may take to reach Mongo.")
@click.option("--check-mongo-url", envvar="WBLOAD_CHECK_MONGO_URL", show_envvar=True,
              callback=_secret,
              help="MongoDB as this machine reaches it, if not as Redis does (--mongo-url).")
def verify_command(recipes: Sequence[str], mongo_url: str | None, params: Sequence[str],
                   secret_key: str | None, target: RedisTarget, timeout: float,
                   check_mongo_url: str | None) -> None:
    """Write, update and delete a probe key; wait until each shows in Mongo.

    Without RECIPE, verifies each recipes/*.py whose NAME is registered.
    """
    client = ready_client(target)
    if recipes:
        rendered_recipes = render_recipes(recipes, mongo_url, params, secret_key)
    else:
        rendered_recipes = deployed_recipes(client, mongo_url, params, secret_key)
    for rendered in rendered_recipes:
        url = check_mongo_url or mongo_url_for(client, str(rendered.values["MONGO_URL"]))

        def report(step: Step, name: str = rendered.name) -> None:
            click.echo(f"{name}: {step.name} reached Mongo in {step.seconds:.2f}s")

        verify(client, rendered, url, timeout, on_step=report)
        click.echo(f"{rendered.name}: verified")


def deployed_recipes(client: redis.Redis, mongo_url: str | None, params: Sequence[str],
                     secret_key: str | None) -> list[RenderedRecipe]:
    """The recipes under ./recipes whose NAME is registered on the server."""
    candidates = [str(p) for p in sorted(Path("recipes").glob("*.py"))]
    registered = set(write_behinds(read_registrations(client)))
    found = [r for r in render_recipes(candidates, mongo_url, params, secret_key)
             if r.name in registered]
    if not found:
        raise UsageError("no recipe under ./recipes is deployed here: name the RECIPE to verify")
    return found


@main.group("requirements", epilog=EXIT_CODES)
def requirements_group() -> None:
    """Move a recipe's Python requirements to Redis hosts that cannot reach PyPI."""


@requirements_group.command("export", epilog=EXIT_CODES)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--to", "directory", required=True, type=click.Path(file_okay=False),
              help="Folder for the requirement zips (gears-cli's format).")
@redis_options
def requirements_export(recipe: str, directory: str, target: RedisTarget) -> None:
    """Install RECIPE's REQUIREMENTS on a Gears that reaches PyPI, then save them as zips."""
    (rendered,) = render_recipes([recipe], None, [])
    client = ready_client(target)
    install_requirements(client, rendered.requirements)
    raw = target.client(decode_responses=False)
    for requirement in rendered.requirements:
        path = export_requirement(raw, requirement, Path(directory))
        click.echo(f"{requirement}: saved {path}")
    write_order(Path(directory), rendered.requirements)


@requirements_group.command("prune", epilog=EXIT_CODES)
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@redis_options
def requirements_prune(recipes: Sequence[str], target: RedisTarget) -> None:
    """Remove stored requirements that carry another pymongo than the pin (of RECIPE, else of
    what is registered): Gears would reinstall them when Redis restarts."""
    client = ready_client(target)
    if recipes:
        sources = [(r.name, r.requirements) for r in render_recipes(recipes, None, [])]
    else:
        sources = [(wb.name, list(wb.current[0].requirements))
                   for wb in write_behinds(read_registrations(client)).values() if wb.current]
    pins = {name: pin_requirement(reqs) for name, reqs in sources}
    distinct = sorted({p for p in pins.values() if p})
    if len(distinct) != 1:
        raise UsageError(
            "no pymongo pin to keep: name the RECIPE whose pin to keep" if not distinct else
            f"the write-behinds pin different pymongo versions ({', '.join(distinct)}); "
            "name the RECIPE whose pin to keep")
    outcome = prune(client, target.client(decode_responses=False), distinct[0],
                    check_disk=True)
    _report_prune("requirements", outcome)
    if not outcome.removed and not outcome.kept:
        click.echo(f"requirements: nothing stored carries another pymongo than {distinct[0]}")


def _report_prune(name: str, outcome: PruneOutcome) -> None:
    for risk in outcome.removed:
        click.echo(f"{name}: removed the stored requirement {risk.requirement} (it carries "
                   f"pymongo {risk.pymongo}, which a Redis restart could install over the pin)")
    if outcome.reinstalled:
        click.echo(f"{name}: reinstalled {outcome.reinstalled} from its stored wheels")
    if outcome.persisted:
        click.echo(f"{name}: {outcome.persisted}, so that a restart loads what is left")
    if outcome.persist_error:
        click.echo(f"wbload: warning: could not rewrite the AOF ({outcome.persist_error}); "
                   "until Redis rewrites it, a restart may bring the removed requirement "
                   "back: run BGREWRITEAOF", err=True)
    for risk in outcome.kept:
        click.echo(f"wbload: warning: the stored requirement {risk.requirement} carries pymongo "
                   f"{risk.pymongo} and a Redis restart may install it over the pin, but "
                   f"session(s) {', '.join(risk.used_by)} still list it; {fix_for([risk])}",
                   err=True)


@requirements_group.command("import", epilog=EXIT_CODES)
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@redis_options
def requirements_import(directory: str, target: RedisTarget) -> None:
    """Install the requirement zips in DIRECTORY into Redis, without PyPI."""
    for name in import_requirements(ready_client(target), Path(directory)):
        click.echo(f"{name}: imported")


@main.group("dlq", epilog=EXIT_CODES)
def dlq_group() -> None:
    """Changes Mongo rejected for good (dead letters): list, retry after a fix, purge."""


@dlq_group.command("list", epilog=EXIT_CODES)
@click.argument("name")
@redis_options
@click.option("--count", type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dlq_list(name: str, target: RedisTarget, count: int | None, as_json: bool) -> None:
    """Show write-behind NAME's dead letters, oldest first."""
    letters = list_dead_letters(ready_client(target), name, count)
    if as_json:
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2))
        return
    if not letters:
        click.echo(f"{name}: no dead letters")
        return
    rows = [["ID", "KEY", "OP", "ERROR", "DOCUMENT"]]
    rows += [[d.id, d.key, d.operation, one_line(d.error, 80) or "", _clip(d.document, 60)]
             for d in letters]
    click.echo(_table(rows))


@dlq_group.command("retry", epilog=EXIT_CODES)
@click.argument("name")
@redis_options
@click.option("--id", "ids", multiple=True, help="Only this dead letter (repeatable).")
def dlq_retry(name: str, target: RedisTarget, ids: Sequence[str]) -> None:
    """After fixing the cause, queue the rejected keys' current state again."""
    count = retry_dead_letters(ready_client(target), name, ids)
    click.echo(f"{name}: re-queued {count} key(s)")


@dlq_group.command("purge", epilog=EXIT_CODES)
@click.argument("name")
@redis_options
@click.option("--id", "ids", multiple=True, help="Only this dead letter (repeatable).")
def dlq_purge(name: str, target: RedisTarget, ids: Sequence[str]) -> None:
    """Drop dead letters (all of NAME's, or --id ones)."""
    count = purge_dead_letters(ready_client(target), name, ids)
    click.echo(f"{name}: dropped {count} dead letter(s)")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@main.command("resync", epilog=EXIT_CODES)
@click.argument("name")
@redis_options
@click.option("--stream", "streams", multiple=True, metavar="STREAM",
              help="Resync the keys this (orphaned) stream mentions, then delete it.")
@click.option("--all", "all_keys", is_flag=True, help="Resync every key under NAME's prefix.")
def resync_command(name: str, target: RedisTarget, streams: Sequence[str],
                   all_keys: bool) -> None:
    """Queue keys' current state through write-behind NAME again."""
    if not streams and not all_keys:
        raise UsageError("say which keys: --stream STREAM (repeatable) or --all")
    client = ready_client(target)
    if all_keys:
        prefix = resync_prefix(client, name)
        click.echo(f"{name}: resynced {resync(client, name, keys_with_prefix(client, prefix))} "
                   f"key(s) under {prefix}:")
    for stream in streams:
        count = resync_stream(client, name, stream)
        click.echo(f"{name}: resynced {count} key(s) from {stream}, which is deleted")


@main.command("undeploy", epilog=EXIT_CODES)
@click.argument("name")
@redis_options
def undeploy_command(name: str, target: RedisTarget) -> None:
    """Unregister write-behind NAME (both readers); keeps changes still waiting."""
    outcome = undeploy(ready_client(target), name)
    click.echo(f"{name}: unregistered {', '.join(outcome.unregistered)}")
    if outcome.waiting:
        click.echo(f"{name}: {outcome.waiting} change(s) were still waiting; kept in "
                   f"{', '.join(outcome.kept_streams)} (not yet written to Mongo)",
                   err=True)


def _drain_progress(name: str) -> Callable[[list[Draining]], None]:
    """Print each older version's remaining changes when they change."""
    shown: dict[str, int] = {}

    def show(left: list[Draining]) -> None:
        for item in left:
            version = item.registration.version or "?"
            if shown.get(version) != item.waiting:
                shown[version] = item.waiting
                click.echo(f"{name}: version {version} has {item.waiting} change(s) left to "
                           "write before the new one takes over", err=True)
        for version in set(shown) - {i.registration.version or "?" for i in left}:
            click.echo(f"{name}: version {version} drained and unregistered", err=True)
            del shown[version]

    return show


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
