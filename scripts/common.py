"""Shared plumbing of the setup CLIs: AWS clients, errors with exit codes, and the change report."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.client import BaseClient
from botocore.exceptions import ClientError, ParamValidationError

from agent.secret_settings import SecretSettingsError, check_secret_id
from agent.settings import OUTBOX_PREFIX_PATTERN
from memory.aws import is_region, make_client, refused_parameters, s3_bucket_name_problem
from memory.errors import ValidationError
from memory.index.limits import validate_bucket_name, validate_dimension

#: Error codes meaning "IAM refused this call" (moto reports a plain ``403``).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"})
#: Error codes meaning "the resource does not exist".
NOT_FOUND_CODES = frozenset(
    {"NoSuchEntity", "NotFoundException", "ResourceNotFoundException", "UserNotFoundException", "404"}
)


class ScriptError(Exception):
    """A failure the CLI reports as one clear line and a non-zero exit code."""

    exit_code = 1


class UsageError(ScriptError):
    """Missing, contradictory or invalid arguments (as argparse's own usage errors); nothing was done."""

    exit_code = 2


class DriftError(ScriptError):
    """Existing resources differ from what the command would create; nothing was overwritten."""

    exit_code = 3


class PermissionDenied(ScriptError):
    """The caller's credentials lack an IAM permission the command needs."""

    exit_code = 4


def aws_client(service: str, region: str, *, resend: bool = True) -> BaseClient:
    """A boto3 client with explicit region, adaptive retries and timeouts.

    Failed calls carry the IAM action they needed (``Error.Permission``) so that
    ``permission_denied`` can name it. ``resend=False``: no retries, for creates that are not
    idempotent (botocore resends a request whose response was lost: a second user pool).
    """
    client = make_client(service, region=region, read_timeout=30.0, **({} if resend else {"max_attempts": 0}))
    prefix = client.meta.service_model.signing_name
    client.meta.events.register("after-call", _tag_permission(prefix))
    return client


#: Operations the CLIs call whose IAM action has another name (the rest: ``<service>:<operation>``).
IAM_ACTIONS = {
    "s3": {
        "HeadBucket": "ListBucket",
        "ListObjectsV2": "ListBucket",
        "GetBucketEncryption": "GetEncryptionConfiguration",
        "PutBucketEncryption": "PutEncryptionConfiguration",
        "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    }
}


#: What else a refusal of these operations can mean.
DENIAL_HINTS = {
    "HeadBucket": " Or the bucket belongs to another AWS account (S3 bucket names are global): choose another name.",
    "ListVectors": " Listing with metadata also needs 's3vectors:GetVectors' (S3 Vectors refuses it without).",
}


#: Operations whose refusal naming KMS ("Access to KMS is not allowed") is of the resource's key,
#: the operation itself being allowed: the IAM action the caller lacks.
KMS_REFUSALS = {"GetSecretValue": "kms:Decrypt"}


def _tag_permission(prefix: str) -> Callable[..., None]:
    renamed = IAM_ACTIONS.get(prefix, {})

    def handler(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response is not None and http_response.status_code >= 300 and "Error" in parsed:
            action = f"{prefix}:{renamed.get(model.name, model.name)}"
            if model.name in KMS_REFUSALS and "KMS" in str(parsed["Error"].get("Message", "")):
                action = KMS_REFUSALS[model.name]
            parsed["Error"].setdefault("Permission", action)

    return handler


def error_code(err: ClientError) -> str:
    """The service error code of ``err`` (as a string)."""
    return str(err.response.get("Error", {}).get("Code", ""))


def is_denied(err: ClientError) -> bool:
    """Whether ``err`` is an IAM access denial."""
    return error_code(err) in DENIED_CODES


def is_not_found(err: ClientError) -> bool:
    """Whether ``err`` says the resource does not exist."""
    return error_code(err) in NOT_FOUND_CODES


def permission_denied(err: ClientError) -> PermissionDenied:
    """A PermissionDenied naming the IAM action the failed call needed."""
    action = err.response.get("Error", {}).get("Permission") or err.operation_name
    return PermissionDenied(
        f"access denied: the credentials in use lack the IAM permission '{action}' "
        f"(error {error_code(err)} on {err.operation_name}). Grant it to the caller and re-run."
        f"{DENIAL_HINTS.get(err.operation_name, '')}"
    )


#: What one line of botocore's validation report says is wrong, and the limit it names.
_REFUSAL = re.compile(
    r"^(?P<kind>Invalid (?:length|value|type|bucket name)|Missing required|Unknown|Invalid number|Must set one)"
    r"(?:.*, (?P<limit>valid (?:min (?:length|value)|types): .*))?",
    re.MULTILINE,
)


def refused_request(err: ParamValidationError) -> str:
    """One line for a request botocore's parameter check refused (nothing was sent): the
    parameters and limits its report names, never a value (the report quotes them)."""
    problems = [
        m["kind"].lower() + (f", {m['limit']}" if m["limit"] else "")
        for m in _REFUSAL.finditer(str(err.kwargs.get("report", "")))
    ]
    details = f" ({'; '.join(dict.fromkeys(problems))})" if problems else ""
    return (
        f"the AWS API refuses the value of parameter {refused_parameters(err)}{details}; nothing was sent: "
        "check the argument that sets it"
    )


def outbox_prefix(value: str) -> str:
    """An ``--outbox-prefix`` the app accepts as AGENT_OUTBOX_PREFIX (one key segment, no slash)."""
    if not re.fullmatch(OUTBOX_PREFIX_PATTERN, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an outbox prefix the app accepts (AGENT_OUTBOX_PREFIX): one segment of "
            "letters, digits, '.', '_' or '-', starting with a letter or digit, no '/'"
        )
    return value


def nonempty(value: str) -> str:
    """A non-empty argument of UTF-8 text (argparse type): an empty id matches nothing, which must
    not look like a clean run; bytes that are not UTF-8 (Python decodes them to lone surrogates)
    are no id a token carries, and the erasure folder's hash of one would fail."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("must be UTF-8 text (it holds bytes that are not)") from None
    return value


def secret_id(value: str) -> str:
    """A secret's name or ARN (argparse type of ``--secrets-id``): anything else is a usage error,
    exit 2, whose message names its length only (it may be the secret's value, pasted)."""
    try:
        return check_secret_id(value, "--secrets-id")
    except SecretSettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def vector_bucket(value: str) -> str:
    """A vector bucket name S3 Vectors accepts (argparse type of ``--bucket``: anything else is a
    usage error, exit 2, before any AWS call)."""
    try:
        return validate_bucket_name(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def s3_bucket(value: str) -> str:
    """A general purpose bucket name S3 accepts (argparse type of ``--outbox-bucket``, checked as
    the app checks AGENT_OUTBOX_BUCKET: anything else is a usage error, exit 2, before any AWS call)."""
    problem = s3_bucket_name_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"not an S3 bucket name: {problem}")
    return value


def positive_float(value: str) -> float:
    """A finite number above zero (argparse type: anything else is a usage error, exit 2)."""
    number = _finite(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number above zero")
    return number


def dimension(value: str) -> int:
    """An embedding dimension S3 Vectors accepts (argparse type: anything else is a usage error, exit 2)."""
    try:
        return validate_dimension(int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_negative_float(value: str) -> float:
    """A finite number, zero or above (argparse type: anything else is a usage error, exit 2)."""
    number = _finite(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is negative")
    return number


def _finite(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return number


def aws_region(value: str) -> str:
    """A region of AWS's shape (argparse type of ``--region``, and of its default from the
    environment: anything else is a usage error, exit 2, before any AWS call)."""
    if not is_region(value):
        raise argparse.ArgumentTypeError(f"{_not_a_region(value)} (--region, else $AWS_REGION, else $AWS_DEFAULT_REGION)")
    return value


def _not_a_region(value: str) -> str:
    return f"{value!r} is not an AWS region (such as us-east-1 or eu-west-3)"


def default_region() -> str | None:
    """The region from AWS_REGION or AWS_DEFAULT_REGION, if set."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def add_subcommand(commands: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` opens with ``summary``, the line its parent's list shows."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=summary)
    return parser


def add_common_args(
    p: argparse.ArgumentParser,
    *,
    mutating: bool = True,
    region_help: str = "AWS region (default: $AWS_REGION, else $AWS_DEFAULT_REGION)",
) -> None:
    """``--region`` for every command, ``--dry-run`` for those that change things."""
    p.add_argument("--region", type=aws_region, default=default_region(), help=region_help)
    if mutating:
        p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")


def require_region(args: argparse.Namespace) -> str:
    """The region the command runs in; a clear error when none is configured."""
    if not args.region:
        raise UsageError("no region: pass --region or set AWS_REGION")
    if not is_region(args.region):  # doctor's, from the settings (``--region`` is checked when parsed)
        raise UsageError(f"{_not_a_region(args.region)}: check --region, AGENT_REGION, $AWS_REGION and $AWS_DEFAULT_REGION")
    return str(args.region)


def account_id(region: str) -> str:
    """The AWS account of the caller's credentials."""
    return str(aws_client("sts", region).get_caller_identity()["Account"])


def canonical(doc: Any) -> str:
    """A policy document as a comparable string (key order and one-element lists normalised)."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            items = [norm(x) for x in v]
            if len(items) == 1:
                return items[0]
            return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        return v

    if isinstance(doc, str):
        doc = json.loads(doc)
    return json.dumps(norm(doc), sort_keys=True)


def policy_json(doc: dict[str, Any]) -> str:
    """A policy document as the compact JSON string IAM receives."""
    return json.dumps(doc, separators=(",", ":"))


# Report statuses: which ones mean "something changed" (or would, in a dry run).
CHANGES = frozenset({"CREATED", "UPDATED", "DELETED", "WOULD CREATE", "WOULD UPDATE", "WOULD DELETE"})


@dataclass
class Report:
    """What a command found and did, printed as an aligned plan/result table."""

    title: str
    dry_run: bool = False
    read_only: bool = False
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def add(self, status: str, resource: str, detail: str = "") -> None:
        """Record one resource's status (e.g. CREATED, UNCHANGED, DRIFT, WOULD CREATE)."""
        self.rows.append((status, resource, detail))

    def change(self, verb: str, resource: str, detail: str = "") -> None:
        """Record a change: ``verb`` (CREATE/UPDATE/DELETE) done, or planned in a dry run."""
        done = {"CREATE": "CREATED", "UPDATE": "UPDATED", "DELETE": "DELETED"}[verb]
        status = f"WOULD {verb}" if self.dry_run else done
        self.add(status, resource, detail)

    def output(self, name: str, value: str) -> None:
        """A value the user needs next (ids, ARNs, URLs), printed after the table."""
        self.outputs[name] = value

    @property
    def changed(self) -> bool:
        return any(s in CHANGES for s, _, _ in self.rows)

    @property
    def exit_code(self) -> int:
        """0 when all is well; 4 if a check was denied, 3 on drift, 1 if something is missing."""
        statuses = {s for s, _, _ in self.rows}
        for status, code in (("DENIED", 4), ("DRIFT", 3), ("MISSING", 1)):
            if status in statuses:
                return code
        return 0

    @property
    def drift(self) -> list[str]:
        return [f"{r}: {d}" for s, r, d in self.rows if s == "DRIFT"]

    def render(self) -> str:
        """The report as text."""
        lines = [f"== {self.title}{' (dry run: nothing changed)' if self.dry_run else ''} =="]
        width = max([len(s) for s, _, _ in self.rows] + [6])
        rwidth = max([len(r) for _, r, _ in self.rows] + [8])
        lines += [f"{s.ljust(width)}  {r.ljust(rwidth)}  {d}".rstrip() for s, r, d in self.rows]
        for name, value in self.outputs.items():
            lines.append(f"{name}: {value}")
        if not self.changed and not self.read_only:
            settled = not self.exit_code  # no drift, nothing missing or denied
            lines.append("Nothing to change: everything is already as intended." if settled else "Nothing changed.")
        if self.drift:
            lines.append(
                "DRIFT: existing resources differ and were NOT overwritten; fix them by hand or "
                "with the command named above."
            )
        return "\n".join(lines)
