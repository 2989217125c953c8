"""The `wbload` command line: parses options, calls the library, prints. Nothing more."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import redis

from . import __version__
from .completion import complete_write_behinds
from .connection import RedisTarget
from .dead_letters import list_dead_letters, purge_dead_letters, retry_dead_letters
from .deploy import apply, eviction_warning, plan, pyexecute_args
from .drain import Draining, wait_for_drain
from .errors import (
    EXIT_CODE_HELP,
    ExitCode,
    ServerUnsuitable,
    UsageError,
    WbloadError,
    WrongPymongo,
)
from .gears_errors import one_line
from .interpreter import fix_for, pin_requirement
from .monitor import Exporter, serve
from .parameters import from_environment, parse_assignments
from .plan import Action
from .prune import PruneOutcome, prune
from .redact import redact, url_password
from .registrations import read_registrations, write_behinds
from .render import RenderedRecipe, render_files
from .requirements import (
    export_requirement,
    import_on_every_shard,
    install_requirements,
    write_order,
)
from .resync import ResyncOutcome, keys_with_prefix, resync, resync_prefix, resync_stream
from .scaffold import new_recipe
from .server import ready_deployment
from .status import ReaderStatus, StatusReport, WriteBehindStatus, collect_status
from .topology import Deployment, gears_cluster_problems, refresh
from .undeploy import undeploy
from .verify import Step, mongo_url_for, verify
from .watch import age, watch

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
        except (redis.exceptions.MovedError, redis.exceptions.AskError,
                redis.exceptions.TryAgainError) as e:
            _fail(ctx, f"the cluster's slots moved while wbload ran ({type(e).__name__}: {e}); "
                  "run it again once `redis-cli --cluster check` shows no slot migrating",
                  ExitCode.REDIS_UNREACHABLE)
        except redis.exceptions.ClusterDownError as e:
            _fail(ctx, f"the Redis Cluster is down ({e}); bring every shard up, run `wbload "
                  "refresh`, then retry", ExitCode.SERVER_UNSUITABLE)
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
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
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
                   wait: float, requirements_from: str | None, drain_timeout: float,
                   as_json: bool) -> None:
    """Register RECIPE(s) in Redis, unless the same version is there already."""
    if as_json and not dry_run:
        raise UsageError("--json prints the plan of --dry-run: add --dry-run")
    rendered_recipes = render_recipes(recipes, mongo_url, params, secret_key)
    deployment = ready_deployment(target, wait=wait, primary=True)
    deployment.require_gears_ready()
    secret = (secret_key, mongo_url) if secret_key and mongo_url else None
    to_import = Path(requirements_from) if requirements_from else None
    warning = eviction_warning(deployment)
    if warning:
        click.echo(f"wbload: {warning}", err=True)
    plans = []
    for rendered in rendered_recipes:
        deploy_plan = plan(deployment, rendered, force=force)
        what = f"{rendered.name} {rendered.version}"
        if as_json:
            plans.append(_plan_record(deploy_plan))
            continue
        if dry_run:
            sent = "RG.PYEXECUTE <recipe>" + "".join(f" {a}" for a in pyexecute_args(rendered)[2:])
            click.echo(f"{what}: would {deploy_plan.action.value} ({deploy_plan.reason})"
                       + (f"; would send {sent}" if deploy_plan.sends_recipe else ""))
            continue
        if deploy_plan.action is Action.UP_TO_DATE:
            click.echo(f"{what}: up to date (nothing sent)")
            if secret or to_import:
                click.echo(f"{what}: nothing deployed, so --secret-key and --requirements-from "
                           "were not used (to rotate the Mongo URL, SET the key itself)",
                           err=True)
        else:
            if deploy_plan.sends_recipe:
                click.echo(f"{what}: {deploy_plan.action.value} ({deploy_plan.reason}) ...")
            outcome = apply(deployment, deploy_plan, secret, to_import)
            for name in outcome.imported:
                click.echo(f"{name}: imported", err=True)
            to_import = None
            ids = ", ".join(f"{r.reader} {r.id}" for r in outcome.registered.current) \
                if outcome.registered else ""
            click.echo(f"{what}: registered in {outcome.seconds:.1f}s ({ids})")
        # Also when up to date: a deploy killed during its drain left the older version's
        # readers registered.
        wait_for_drain(deployment, rendered.name, drain_timeout,
                       _drain_progress(rendered.name))
        pinned = pin_requirement(rendered.requirements)
        if pinned:
            _report_prune(rendered.name, prune(deployment, pinned))
    if as_json:
        _echo_json({"plans": plans})


def _plan_record(deploy_plan: Any) -> dict[str, Any]:
    rendered = deploy_plan.rendered
    sends = ["RG.PYEXECUTE", "<recipe>", *pyexecute_args(rendered)[2:]] \
        if deploy_plan.sends_recipe else None
    return {
        "name": rendered.name,
        "version": rendered.version,
        "action": deploy_plan.action.value,
        "reason": deploy_plan.reason,
        "registered_version": deploy_plan.current.version if deploy_plan.current else None,
        "unregister_first": [r.id for r in deploy_plan.unregister_first],
        "sends": sends,
    }


def _echo_json(document: Any) -> None:
    """Every --json output: one JSON document on stdout, nothing else there."""
    click.echo(json.dumps(document, indent=2))


@main.command("status", epilog=EXIT_CODES)
@redis_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--shards", "by_shard", is_flag=True,
              help="On a cluster, also one row per shard (the totals are over every shard).")
@click.option("--watch", "watch_every", type=click.FloatRange(min=0.5), is_flag=False,
              flag_value=2.0, default=None, metavar="[SECONDS]",
              help="Redraw the table in place every SECONDS (2 if not given); Ctrl-C stops.")
def status_command(target: RedisTarget, as_json: bool, by_shard: bool,
                   watch_every: float | None) -> None:
    """Show every write-behind: version, readers, counters, last error, backlog, and LAG
    (how long the oldest change still waiting has waited).

    After the report, exits 5 when RedisGears cannot sync (e.g. a cluster node not refreshed)
    and 11 when it runs another pymongo than a recipe pins.
    """
    if watch_every is not None:
        if as_json:
            raise UsageError("--watch redraws a table for a person; drop --json, or poll "
                             "`wbload status --json` (or run `wbload monitor`)")
        watch(status_frames(target, by_shard, watch_every), watch_every, sys.stdout)
        return
    deployment = ready_deployment(target)
    deployment_problems = deployment.problems[:1]
    report = collect_status(deployment)
    if as_json:
        _echo_json(report.to_dict())
    else:
        _print_status(report, by_shard)
    _warn_or_fail(report.warnings, report.errors,
                  ServerUnsuitable if report.errors[:1] == deployment_problems else WrongPymongo)


def _print_status(report: StatusReport, by_shard: bool) -> None:
    click.echo(status_text(report, by_shard))


def status_text(report: StatusReport, by_shard: bool) -> str:
    """What `wbload status` prints on stdout (and each frame of `--watch`)."""
    lines = []
    if not report.write_behinds:
        lines.append("no write-behind registered")
    else:
        lines.append(_status_table(report.write_behinds,
                                   by_shard and report.topology == "cluster"))
    running = ", ".join(sorted({s.running or "none" for s in report.gears_pymongo}))
    for s in report.write_behinds:
        if s.pymongo_pin and running:
            lines.append(f"{s.name}: pins pymongo {s.pymongo_pin}; Gears' Python runs {running}")
        if s.dead_letters:
            lines.append(f"{s.name}: {s.dead_letters} change(s) rejected by Mongo, kept in "
                         f"{s.dead_letter_stream} (wbload dlq list {s.name})")
        if s.dead_letters_trimmed:
            lines.append(f"{s.name}: {s.dead_letters_trimmed} older dead letter(s) trimmed "
                         f"from {s.dead_letter_stream} (its bound: the recipe's "
                         "DEAD_LETTER_MAXLEN)")
    for stream, waiting in report.orphan_streams.items():
        lines.append(f"orphan stream {stream}: {waiting} change(s) no registered reader will "
                     f"write (wbload resync NAME --stream {stream})")
    return "\n".join(lines)


def status_frames(target: RedisTarget, by_shard: bool, every: float,
                  clock: Callable[[], float] = time.time,
                  collect: Callable[[Deployment], StatusReport] | None = None,
                  connect: Callable[[RedisTarget], Deployment] = ready_deployment,
                  ) -> Callable[[], str]:
    """`--watch`'s frames: a heading, then the status, or the error that stopped it (the
    next frame connects again)."""
    held: list[Deployment] = []

    def frame() -> str:
        when = time.strftime("%H:%M:%S UTC", time.gmtime(clock()))
        heading = f"wbload status  {target.display}  {when}  (every {every:g}s; Ctrl-C stops)"
        try:
            if not held:
                held.append(connect(target))
            else:  # a node restarted meanwhile is unrefreshed now: look again every frame
                held[0].problems[:] = gears_cluster_problems(held[0])
            polling = functools.partial(collect_status, pymongo=False, orphans=False)
            report = (collect or polling)(held[0])
            body = status_text(report, by_shard)
            body += "".join(f"\nwbload: error: {e}" for e in report.errors)
        except (WbloadError, redis.RedisError) as e:
            if held:
                held.pop().close()
            body = f"wbload: error: {redact(str(e), target.secrets)}"
        return f"{heading}\n\n{body}"

    return frame


def _warn_or_fail(warnings: Sequence[str], errors: Sequence[str],
                  error: type[WbloadError] = WrongPymongo) -> None:
    """Warnings on stderr; the errors too, the last one raised as `error` (its exit code)."""
    for warning in warnings:
        click.echo(f"wbload: warning: {warning}", err=True)
    for line in errors[:-1]:
        click.echo(f"wbload: error: {line}", err=True)
    if errors:
        raise error(errors[-1])


def _backlog(reader: ReaderStatus) -> str:
    """Changes waiting and what they cost in Redis memory: `1200 (350 KiB)`."""
    if reader.backlog is None:
        return ""
    size = reader.backlog_bytes or 0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size //= 1024
    return f"{reader.backlog} ({size} {unit})"


def _status_table(statuses: list[WriteBehindStatus], by_shard: bool = False) -> str:
    rows = [["NAME", "VERSION", "KEYS", "READER", "MODE", "TRIGGERED", "OK", "FAILED",
             "ABORTED", "BACKLOG", "LAG", "LAST ERROR"]]
    for s in statuses:
        groups = [("", s.readers, s.draining)]
        if by_shard:
            groups += [(f"  {shard.shard}", shard.readers, shard.draining) for shard in s.shards]
        first = True
        for where, current, draining in groups:
            readers = [(r, r.reader) for r in current]
            readers += [(r, f"{r.reader} {r.version} (retiring)") for r in draining]
            for r, label in readers:
                rows.append([
                    s.name if first else where, (s.version or "-") if first else "",
                    f"{s.key_prefix}:*" if first and s.key_prefix else "",
                    label, r.mode, str(r.triggered), str(r.success), str(r.failures),
                    str(r.aborted), _backlog(r), "" if r.backlog is None else age(r.oldest_age_s),
                    r.last_error or "-",
                ])
                first = False
        if not s.complete:
            rows.append(["", "", "", "(missing a reader: deploy again to repair)"] + [""] * 8)
    return _table(rows)


@main.command("refresh", epilog=EXIT_CODES)
@redis_options
def refresh_command(target: RedisTarget) -> None:
    """Send RG.REFRESHCLUSTER to every node of a Redis Cluster, then check RedisGears' view.

    RedisGears 1.2 learns the cluster only from this command, after every start of every
    node; until then that node's KeysReaders cannot queue changes.
    """
    deployment = ready_deployment(target)
    if not deployment.is_cluster:
        click.echo(f"{target.display} is a single node: nothing to refresh")
        return
    for node in refresh(deployment):
        click.echo(f"{node}: refreshed")
    after = ready_deployment(target)
    after.require_gears_ready()
    click.echo(f"RedisGears knows all {len(after.shards)} shards")


@main.command("verify", epilog=EXIT_CODES)
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@recipe_options
@redis_options
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds each step (insert, update, delete) may take to reach Mongo.")
@click.option("--check-mongo-url", envvar="WBLOAD_CHECK_MONGO_URL", show_envvar=True,
              callback=_secret,
              help="MongoDB as this machine reaches it, if not as Redis does (--mongo-url).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(recipes: Sequence[str], mongo_url: str | None, params: Sequence[str],
                   secret_key: str | None, target: RedisTarget, timeout: float,
                   check_mongo_url: str | None, as_json: bool) -> None:
    """Write, update and delete a probe key; wait until each shows in Mongo.

    Without RECIPE, verifies each recipes/*.py whose NAME is registered.
    """
    deployment = ready_deployment(target)
    if recipes:
        rendered_recipes = render_recipes(recipes, mongo_url, params, secret_key)
    else:
        rendered_recipes = deployed_recipes(deployment, mongo_url, params, secret_key)
    verified = []
    for rendered in rendered_recipes:
        url = check_mongo_url or mongo_url_for(deployment, str(rendered.values["MONGO_URL"]))
        steps: list[dict[str, Any]] = []

        def report(step: Step, name: str = rendered.name,
                   steps: list[dict[str, Any]] = steps) -> None:
            steps.append({"step": step.name, "seconds": round(step.seconds, 3)})
            if not as_json:
                click.echo(f"{name}: {step.name} reached Mongo in {step.seconds:.2f}s")

        verify(deployment, rendered, url, timeout, on_step=report)
        verified.append({"name": rendered.name, "version": rendered.version, "steps": steps})
        if not as_json:
            click.echo(f"{rendered.name}: verified")
    if as_json:
        _echo_json({"verified": verified})


def deployed_recipes(deployment: Deployment, mongo_url: str | None, params: Sequence[str],
                     secret_key: str | None) -> list[RenderedRecipe]:
    """The recipes under ./recipes whose NAME is registered on the server."""
    candidates = [str(p) for p in sorted(Path("recipes").glob("*.py"))]
    registered = set(write_behinds(read_registrations(deployment.entry)))
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def requirements_export(recipe: str, directory: str, target: RedisTarget, as_json: bool) -> None:
    """Install RECIPE's REQUIREMENTS on a Gears that reaches PyPI, then save them as zips."""
    (rendered,) = render_recipes([recipe], None, [])
    deployment = ready_deployment(target)
    deployment.require_gears_ready()
    install_requirements(deployment.entry, rendered.requirements)
    raw = target.client(decode_responses=False)
    saved = []
    for requirement in rendered.requirements:
        path = export_requirement(raw, requirement, Path(directory))
        saved.append({"requirement": requirement, "path": str(path)})
        if not as_json:
            click.echo(f"{requirement}: saved {path}")
    write_order(Path(directory), rendered.requirements)
    if as_json:
        _echo_json({"name": rendered.name, "version": rendered.version, "requirements": saved})


@requirements_group.command("prune", epilog=EXIT_CODES)
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@redis_options
def requirements_prune(recipes: Sequence[str], target: RedisTarget) -> None:
    """Remove stored requirements that carry another pymongo than the pin (of RECIPE, else of
    what is registered): Gears would reinstall them when Redis restarts."""
    deployment = ready_deployment(target)
    deployment.require_gears_ready()
    if recipes:
        sources = [(r.name, r.requirements) for r in render_recipes(recipes, None, [])]
    else:
        sources = [(wb.name, list(wb.current[0].requirements))
                   for wb in write_behinds(read_registrations(deployment.entry)).values()
                   if wb.current]
    pins = {name: pin_requirement(reqs) for name, reqs in sources}
    distinct = sorted({p for p in pins.values() if p})
    if len(distinct) != 1:
        raise UsageError(
            "no pymongo pin to keep: name the RECIPE whose pin to keep" if not distinct else
            f"the write-behinds pin different pymongo versions ({', '.join(distinct)}); "
            "name the RECIPE whose pin to keep")
    outcome = prune(deployment, distinct[0], check_disk=True)
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
    deployment = ready_deployment(target)
    deployment.require_gears_ready()
    for name in import_on_every_shard(deployment, Path(directory)):
        click.echo(f"{name}: imported")


@main.group("dlq", epilog=EXIT_CODES)
def dlq_group() -> None:
    """Changes Mongo rejected for good (dead letters): list, retry after a fix, purge."""


@dlq_group.command("list", epilog=EXIT_CODES)
@click.argument("name", shell_complete=complete_write_behinds)
@redis_options
@click.option("--count", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many.")
@click.option("--after", metavar="ID", help="Start after this dead letter (the next page).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dlq_list(name: str, target: RedisTarget, count: int, after: str | None,
             as_json: bool) -> None:
    """Show write-behind NAME's dead letters, oldest first, a page at a time."""
    letters = list_dead_letters(ready_deployment(target), name, count + 1, after)
    more, letters = len(letters) > count, letters[:count]
    if as_json:
        _echo_json([asdict(letter) for letter in letters])
    elif not letters:
        click.echo(f"{name}: no dead letters" + (f" after {after}" if after else ""))
    else:
        rows = [["ID", "KEY", "OP", "ERROR", "DOCUMENT"]]
        rows += [[d.id, d.key, d.operation, one_line(d.error, 80) or "", _clip(d.document, 60)]
                 for d in letters]
        click.echo(_table(rows))
    if more:
        click.echo(f"{name}: more dead letters: --after {letters[-1].id}", err=True)


@dlq_group.command("retry", epilog=EXIT_CODES)
@click.argument("name", shell_complete=complete_write_behinds)
@redis_options
@click.option("--id", "ids", multiple=True, help="Only this dead letter (repeatable).")
def dlq_retry(name: str, target: RedisTarget, ids: Sequence[str]) -> None:
    """After fixing the cause, queue the rejected keys' current state again."""
    count = retry_dead_letters(ready_deployment(target), name, ids)
    click.echo(f"{name}: re-queued {count} key(s)")


@dlq_group.command("purge", epilog=EXIT_CODES)
@click.argument("name", shell_complete=complete_write_behinds)
@redis_options
@click.option("--id", "ids", multiple=True, help="Only this dead letter (repeatable).")
def dlq_purge(name: str, target: RedisTarget, ids: Sequence[str]) -> None:
    """Drop dead letters (all of NAME's, or --id ones)."""
    count = purge_dead_letters(ready_deployment(target), name, ids)
    click.echo(f"{name}: dropped {count} dead letter(s)")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@main.command("resync", epilog=EXIT_CODES)
@click.argument("name", shell_complete=complete_write_behinds)
@redis_options
@click.option("--stream", "streams", multiple=True, metavar="STREAM",
              help="Resync the keys this (orphaned) stream mentions, then delete it.")
@click.option("--all", "all_keys", is_flag=True, help="Resync every key under NAME's prefix.")
def resync_command(name: str, target: RedisTarget, streams: Sequence[str],
                   all_keys: bool) -> None:
    """Queue keys' current state through write-behind NAME again."""
    if not streams and not all_keys:
        raise UsageError("say which keys: --stream STREAM (repeatable) or --all")
    deployment = ready_deployment(target)
    if all_keys:
        prefix = resync_prefix(deployment, name)
        outcome = resync(deployment, name, keys_with_prefix(deployment, prefix))
        click.echo(f"{name}: resynced {outcome.queued} key(s) under {prefix}:")
        _say_skipped(name, prefix, outcome)
    for stream in streams:
        outcome = resync_stream(deployment, name, stream)
        click.echo(f"{name}: resynced {outcome.queued} key(s) from {stream}, which is deleted")
        _say_skipped(name, stream, outcome)


def _say_skipped(name: str, where: str, outcome: ResyncOutcome) -> None:
    if outcome.gone:
        click.echo(f"{name}: {outcome.gone} key(s) of {where} are gone from Redis without an "
                   "app delete (expired, evicted): their Mongo documents stay", err=True)
    if outcome.skipped:
        sample = ", ".join(outcome.skipped[:3]) + (", ..." if len(outcome.skipped) > 3 else "")
        click.echo(f"{name}: skipped {len(outcome.skipped)} key(s) of {where} that are not "
                   f"JSON documents ({sample})", err=True)


@main.command("undeploy", epilog=EXIT_CODES)
@click.argument("name", shell_complete=complete_write_behinds)
@redis_options
def undeploy_command(name: str, target: RedisTarget) -> None:
    """Unregister write-behind NAME (both readers); keeps changes still waiting."""
    outcome = undeploy(ready_deployment(target), name)
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


@main.command("monitor", epilog=EXIT_CODES)
@redis_options
@click.option("--port", type=click.IntRange(0, 65535), default=9121, show_default=True,
              help="Serve Prometheus metrics at http://BIND:PORT/metrics.")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Seconds between two collections (scrapes read the last one).")
def monitor_command(target: RedisTarget, port: int, bind: str, interval: float) -> None:
    """Export every write-behind's health to Prometheus, per shard, until stopped.

    Collects on its own every --interval seconds, whatever the number of scrapers; when Redis
    cannot be read it keeps serving (wbload_redis_up 0, wbload_scrape_errors_total).
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(message)s")
    exporter = Exporter(target, interval)
    try:
        server, collector = serve(exporter, bind, port)
    except OSError as e:
        raise UsageError(f"cannot listen on {bind}:{port} ({e.strerror or e}); pick another "
                         "--port or --bind") from None
    click.echo(f"wbload monitor: serving http://{bind}:{server.server_port}/metrics "
               f"for {target.display}, collecting every {interval:g}s", err=True)
    signal.signal(signal.SIGTERM, lambda *_: exporter.stopping.set())
    try:
        while collector.is_alive():
            collector.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        exporter.stopping.set()
        server.shutdown()


@main.command("new", epilog=EXIT_CODES)
@click.argument("entity")
@click.option("--prefix", required=True, help="Key prefix: the app writes <prefix>:<id>.")
@click.option("--collection", required=True, help="MongoDB collection to write.")
@click.option("--key-field", required=True, help="Field of the Mongo document holding <id>.")
@click.option("--database", default="dbSpeedMernDemo", show_default=True,
              help="MongoDB database (a parameter: --param MONGO_DATABASE=... overrides it).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="recipes",
              show_default=True, help="Where the recipes (and their common/) are.")
def new_command(entity: str, prefix: str, collection: str, key_field: str, database: str,
                directory: str) -> None:
    """Write recipes/ENTITY.py: a write-behind of another entity, laid out as movies.py.

    Never overwrites a file (exit 3). Deploy it with the others: wbload deploy recipes/*.py
    """
    made = new_recipe(Path(directory), entity, prefix, collection, key_field, database)
    click.echo(f"{made.path}: write-behind {made.name} ({prefix}:<id> -> {collection}.{key_field}"
               f"); check it with `wbload render {made.path}`")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
