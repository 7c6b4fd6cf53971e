"""``python -m scripts <command>``: setup and operations CLIs for the AWS deployment.

Exit codes: 0 done (or nothing to do), 1 error, 2 bad arguments or tenant id, 3 drift found
(nothing overwritten), 4 missing IAM permission, 130 interrupted (Ctrl-C: re-run the command).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from memory.errors import InvalidTenantId, MemoryLibraryError
from scripts import agentcore_cmd, cognito, doctor, forget, outbox_cmd, retention, runtime_role, tvm_role, vectors
from scripts.common import Report, ScriptError, error_code, is_denied, permission_denied, refused_request

#: Loggers kept at INFO under ``-v``: at DEBUG they print credentials and request bodies.
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
COMMANDS = (cognito, runtime_role, tvm_role, vectors, forget, outbox_cmd, retention, agentcore_cmd, doctor)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per module in COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging (the AWS SDK's stays at INFO: it prints credentials)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; print its report; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    if args.verbose:  # the AWS SDK's debug log prints request headers and bodies: tokens, passwords
        for sdk in SDK_LOGGERS:
            logging.getLogger(sdk).setLevel(logging.INFO)
    try:
        report: Report = args.func(args)
    except KeyboardInterrupt:
        print(
            "interrupted: part of the work may be done; re-run the same command to finish it "
            "(the commands are idempotent)",
            file=sys.stderr,
        )
        return INTERRUPTED
    except InvalidTenantId as err:
        print(f"error: invalid tenant id: {err}", file=sys.stderr)
        return 2
    except MemoryLibraryError as err:  # raised by memory.* with the ClientError as cause
        cause = err.__cause__
        if isinstance(cause, ParamValidationError):  # an argument botocore's parameter check refused
            print(f"error: {refused_request(cause)}", file=sys.stderr)
            return 2
        if isinstance(cause, ClientError) and is_denied(cause):
            denied = permission_denied(cause)
            print(f"error: {denied}", file=sys.stderr)
            return denied.exit_code
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ClientError as err:
        if is_denied(err):
            err = permission_denied(err)
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        print(f"error: AWS call {err.operation_name} failed ({error_code(err)}): {err}", file=sys.stderr)
        return 1
    except ScriptError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except ParamValidationError as err:  # a name or value from the arguments the API refuses
        print(f"error: {refused_request(err)}", file=sys.stderr)
        return 2
    except BotoCoreError as err:
        print(f"error: AWS client failure: {err}", file=sys.stderr)
        return 1
    if not _print(report.render()) and report.outputs:
        print(
            f"error: stdout was closed before the values printed last were read ({', '.join(report.outputs)}); "
            "a re-run prints them again, except a password, which is shown once only",
            file=sys.stderr,
        )
        return 1
    return report.exit_code


def _print(text: str) -> bool:
    """Print to stdout; False when the reader closed the pipe early (``| head``): the output
    then ends quietly, with no traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:  # and the interpreter's flush at exit must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
