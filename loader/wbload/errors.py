"""Errors an operator can act on, each with the exit code the CLI returns for it."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of the `wbload` command, as listed in `wbload --help`."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    RECIPE = 3
    REDIS_UNREACHABLE = 4
    SERVER_UNSUITABLE = 5
    REFUSED = 6
    DEPLOY_FAILED = 7
    NOT_DEPLOYED = 8
    NOT_IN_SYNC = 9
    VERIFY_FAILED = 10
    WRONG_PYMONGO = 11


EXIT_CODE_HELP = {
    ExitCode.OK: "success (including 'up to date')",
    ExitCode.INTERNAL: "unexpected error (a bug: please report it)",
    ExitCode.USAGE: "bad command line (unknown option, bad URL)",
    ExitCode.RECIPE: "bad recipe: file missing, syntax error, unknown or bad --param",
    ExitCode.REDIS_UNREACHABLE: "cannot reach or log in to Redis",
    ExitCode.SERVER_UNSUITABLE: "Redis lacks RedisGears or RedisJSON, or is a read-only replica",
    ExitCode.REFUSED: "a newer version is registered (use --force to replace it)",
    ExitCode.DEPLOY_FAILED: "Redis refused the recipe (requirements, exception, no registration)",
    ExitCode.NOT_DEPLOYED: "no such registration",
    ExitCode.NOT_IN_SYNC: "deployed, but an older version still has changes to write",
    ExitCode.VERIFY_FAILED: "verify: the probe did not reach Mongo in time (the line says why)",
    ExitCode.WRONG_PYMONGO: "status/verify: Gears' Python runs another pymongo than the recipe "
                            "pins (after a Redis restart)",
}


class WbloadError(Exception):
    """An error the operator can fix; `str()` is one line saying what and how."""

    exit_code = ExitCode.INTERNAL


class UsageError(WbloadError):
    exit_code = ExitCode.USAGE


class RecipeError(WbloadError):
    exit_code = ExitCode.RECIPE


class RedisUnreachable(WbloadError):
    exit_code = ExitCode.REDIS_UNREACHABLE


class ServerUnsuitable(WbloadError):
    exit_code = ExitCode.SERVER_UNSUITABLE


class Refused(WbloadError):
    exit_code = ExitCode.REFUSED


class DeployFailed(WbloadError):
    exit_code = ExitCode.DEPLOY_FAILED


class NotDeployed(WbloadError):
    exit_code = ExitCode.NOT_DEPLOYED


class NotInSync(WbloadError):
    exit_code = ExitCode.NOT_IN_SYNC


class VerifyFailed(WbloadError):
    exit_code = ExitCode.VERIFY_FAILED


class WrongPymongo(WbloadError):
    exit_code = ExitCode.WRONG_PYMONGO
