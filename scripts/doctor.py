"""``doctor``: check a live account's setup and print what is missing with the command that fixes it.

Read-only. Checks the user pool and app client, the TVM role and its trust policy, the vector
bucket, the outbox bucket (with ``--outbox-bucket``: exists, encrypted, not public), the app's
secret (with ``AGENT_SECRETS_ID`` or ``--secrets-id``: exists, neither scheduled for deletion nor
without a value, a JSON object of secret settings, readable by the execution role), the indexes
of the listed tenants, and access to the Bedrock models.

What it checks is the deployed app's configuration: the settings file the runtime reads
(``agentcore.env``, which ``agentcore`` writes, or ``--settings-file``), parsed by the app's own
loader (``AGENT_*`` environment variables override it, as in the runtime), fills every flag not
given; a flag given wins. The report names the file read.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
from pathlib import Path
from typing import Callable

from botocore.exceptions import ClientError
from dotenv import dotenv_values

from agent.secret_settings import SecretSettingsError, check_secret_id, parse_secret_settings
from agent.settings import SETTINGS_FILE_ENV, Settings, SettingsError, load_settings, secret_settings
from memory.factory import create_embedder
from memory.index.s3vectors import create_index_params
from memory.tenants import index_name_for, validate_tenant_id
from scripts import agentcore_cmd, cognito, runtime_role, tvm_role
from scripts.agentcore_cmd import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL, PROFILE_PREFIXES, ROLE_ARN, SETTINGS_FILE
from scripts.app_secret import described_secret, secret_statements
from scripts.common import (
    Report,
    ScriptError,
    UsageError,
    account_id,
    add_common_args,
    aws_client,
    canonical,
    dimension,
    default_region,
    error_code,
    is_denied,
    is_not_found,
    require_region,
    secret_id,
    vector_bucket,
)
from scripts.iam_roles import existing_role
from scripts.vectors import (
    DEFAULT_DIMENSION,
    VERSIONING_DRIFT,
    bucket_region,
    filters_during_search,
    get_index,
    index_drift,
    outbox_bucket_state,
    region_drift,
    vector_bucket_exists,
    versioning_enabled,
)

#: A check returns (status, detail); status is OK, MISSING or DRIFT.
Check = Callable[[], tuple[str, str]]


def run_check(report: Report, resource: str, check: Check, fix: str | Callable[[], str]) -> None:
    """Run one check; record OK, or MISSING/DRIFT/DENIED with the fix (a callable: made after the check)."""
    try:
        status, detail = check()
    except ClientError as err:
        if not is_denied(err):
            raise
        permission = err.response.get("Error", {}).get("Permission") or err.operation_name
        status, detail = "DENIED", f"cannot check: missing IAM permission {permission}"
    if status != "OK":
        detail = f"{detail} -> fix: {fix() if callable(fix) else fix}"
    report.add(status, resource, detail)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``doctor`` command."""
    p = sub.add_parser("doctor", help="check a live setup (read-only)", description=__doc__)
    add_common_args(
        p,
        mutating=False,
        region_help="AWS region (default: AGENT_REGION of the environment or the settings, else $AWS_REGION, "
        "else $AWS_DEFAULT_REGION)",
    )
    p.add_argument(
        "--settings-file",
        type=Path,
        help=f"the deployed app's settings (default: ${SETTINGS_FILE_ENV}, else {SETTINGS_FILE} if it exists)",
    )
    p.add_argument("--pool-name", help=f"default: the settings' pool id, else {cognito.DEFAULT_POOL_NAME}")
    p.add_argument("--client-name", help=f"default: the settings' client ids, else {cognito.DEFAULT_CLIENT_NAME}")
    p.add_argument("--role-name", help=f"default: the settings' TVM role, else {tvm_role.DEFAULT_ROLE_NAME}")
    p.add_argument(
        "--tenant-mode",
        choices=("multi", "single"),
        help="single: the app uses its own role (agentcore --tenant-mode single), no TVM role to check",
    )
    p.add_argument("--bucket", type=vector_bucket, help="vector bucket (default: the settings' AGENT_VECTOR_BUCKET)")
    p.add_argument("--tenant", action="append", default=[], help="tenant whose index must exist (repeatable)")
    p.add_argument(
        "--dimension",
        type=dimension,
        help=f"of the tenants' indexes (default: the settings' embedder's, AGENT_EMBEDDER; else {DEFAULT_DIMENSION})",
    )
    tvm_role.add_outbox_args(p, checked=True)
    p.add_argument("--secrets-id", type=secret_id, help="the app's secret (default: the settings' AGENT_SECRETS_ID)")
    p.add_argument(
        "--execution-role-arn",
        type=_role_arn,
        help=f"the runtime's execution role, which must be able to read the secret (default: role "
        f"{runtime_role.DEFAULT_ROLE_NAME})",
    )
    p.add_argument(
        "--model-id",
        action="append",
        default=[],
        help=(
            "model to check (default: the Bedrock models the settings' app calls: with AGENT_MODEL_PROVIDER=bedrock "
            f"its AGENT_MODEL_ID or else Strands' default, with AGENT_EMBEDDER=bedrock {DEFAULT_EMBEDDING_MODEL}; "
            f"without a settings file {DEFAULT_CHAT_MODEL} and {DEFAULT_EMBEDDING_MODEL})"
        ),
    )
    # None: not given, so the settings file (or the usual default) decides (``read_settings``).
    p.set_defaults(func=run, region=None)


def _deployed_secret_id(path: Path, value: str | None) -> str | None:
    """The settings' ``AGENT_SECRETS_ID`` if it can be a secret's name or ARN; the error names its
    length only (it may be the secret's value, pasted)."""
    try:
        return None if value is None else check_secret_id(value)
    except SecretSettingsError as err:
        raise ScriptError(f"{path} is not a settings file the app accepts: {err}") from None


def _role_arn(value: str) -> str:
    """An ``--execution-role-arn`` naming a role (a name alone would leave the default role checked)."""
    if not ROLE_ARN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return value


def read_settings(args: argparse.Namespace) -> str:
    """Fill the flags not given from the deployed app's settings; return which file was read.

    The file is the one the runtime reads (``$AGENT_SETTINGS_FILE``, else ``agentcore.env``,
    which ``agentcore`` writes and the toolkit uploads), parsed by the app's own loader, so
    ``AGENT_*`` environment variables override it as they do in the runtime. The region is
    ``--region``, else ``AGENT_REGION``, else ``$AWS_REGION``: the shell's ``AWS_REGION`` is not
    the runtime's (there it is the runtime's own region, the one ``agentcore`` wrote).
    """
    path = args.settings_file or Path(os.environ.get(SETTINGS_FILE_ENV) or SETTINGS_FILE)
    settings = None
    if path.is_file():
        try:
            settings = load_settings(path, read_secret=False)  # the secret has a check of its own
        except SettingsError as err:
            raise ScriptError(f"{path} is not a settings file the app accepts: {err}") from err
    elif args.settings_file or os.environ.get(SETTINGS_FILE_ENV):
        raise ScriptError(f"settings file {path} not found")
    file_values = dotenv_values(path) if settings else {}
    args.region = args.region or os.environ.get("AGENT_REGION") or file_values.get("AGENT_REGION") or default_region()
    if args.region:
        require_region(args)  # checked before the model the app would use is worked out from it
    args.pool_id, args.client_ids = None, []
    args.id_tokens = settings is None or "id" in settings.token_uses
    if settings is not None:
        args.bucket = args.bucket or settings.vector_bucket  # a name S3 Vectors refuses: a SettingsError
        args.tenant_mode = args.tenant_mode or settings.tenant_mode
        args.outbox_bucket = args.outbox_bucket or settings.outbox_bucket
        args.outbox_prefix = args.outbox_prefix or settings.outbox_prefix
        args.outbox_kms_key_arn = args.outbox_kms_key_arn or settings.outbox_kms_key_id
        args.secrets_id = args.secrets_id or _deployed_secret_id(path, settings.secrets_id)
        named = ROLE_ARN.fullmatch(settings.tvm_role_arn or "")
        args.role_name = args.role_name or (named["name"] if named else None)
        if args.pool_name is None and settings.cognito_user_pool_id:
            args.pool_id = settings.cognito_user_pool_id
            args.client_ids = [] if args.client_name else list(settings.cognito_client_ids)
        args.model_id = args.model_id or _app_models(settings, args.region)
        args.dimension = args.dimension or create_embedder(settings.embedder, region=settings.region).dimension
        if settings.tenant_mode == "single" and settings.single_tenant_id not in (None, *args.tenant):
            args.tenant = [*args.tenant, settings.single_tenant_id]
    else:
        args.model_id = args.model_id or [DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL]  # what agentcore deploys
        args.dimension = args.dimension or DEFAULT_DIMENSION
    args.pool_name = args.pool_name or cognito.DEFAULT_POOL_NAME
    args.client_name = args.client_name or cognito.DEFAULT_CLIENT_NAME
    args.role_name = args.role_name or tvm_role.DEFAULT_ROLE_NAME
    args.tenant_mode = args.tenant_mode or "multi"
    args.outbox_prefix = args.outbox_prefix or tvm_role.DEFAULT_OUTBOX_PREFIX
    overridden = sorted(k for k in file_values if os.environ.get(k))
    read = f"{path}" + (f" (overridden by the environment: {', '.join(overridden)})" if overridden else "")
    if settings is None:
        read = f"none, {path} not found; flags and defaults only"
    if not args.bucket:
        raise UsageError(f"doctor needs --bucket, or a settings file with AGENT_VECTOR_BUCKET (settings file: {read})")
    return read


def _app_models(settings: Settings, region: str | None) -> list[str]:
    """The Bedrock models the settings' app calls, as it picks them: the chat model with
    ``AGENT_MODEL_PROVIDER=bedrock`` (in any case), its ``AGENT_MODEL_ID`` or else Strands'
    default for ``region``; the embedding model with ``AGENT_EMBEDDER=bedrock``."""
    models = []
    if settings.model_provider.strip().lower() == "bedrock" and (settings.model_id or region):
        models.append(settings.model_id or _app_default_model(str(region)))
    if settings.embedder == "bedrock":
        models.append(DEFAULT_EMBEDDING_MODEL)
    return models


def _app_default_model(region: str) -> str:
    """The chat model the app uses with ``AGENT_MODEL_PROVIDER=bedrock`` and no ``AGENT_MODEL_ID``:
    Strands' default for ``region``, from the app's own builder (no request is made)."""
    from agent.chat_models import build_model

    return str(build_model("bedrock", region=region).get_config()["model_id"])


def run(args: argparse.Namespace) -> Report:
    """Run every check and return the table."""
    read = read_settings(args)
    region = require_region(args)
    tenants = [validate_tenant_id(t) for t in args.tenant]
    report = Report(f"doctor (settings file: {read})", read_only=True)
    idp = aws_client("cognito-idp", region)
    iam = aws_client("iam", region)
    s3v = aws_client("s3vectors", region)
    bedrock = aws_client("bedrock", region)
    state: dict[str, str] = {}
    checked: dict[str, tuple[str | None, str, str | None]] = {}  # the outbox the TVM role is checked against

    def pool() -> tuple[str, str]:
        pool_id = args.pool_id or cognito.find_pool(idp, args.pool_name)
        found = cognito.described_pool(idp, pool_id) if pool_id else None
        if found is None:
            return "MISSING", f"no user pool with that {'id' if args.pool_id else 'name'}"
        state["pool"], state["pool_name"] = str(pool_id), str(found.get("Name", args.pool_name))
        drift = cognito.pool_drift(found, None)
        if drift:  # cognito setup only reports an existing pool's drift
            state["cognito_fix"] = (
                "as the detail says (`python -m scripts cognito setup` never changes an existing pool), or a new "
                "pool: `python -m scripts cognito setup --pool-name <new name>`, its users, then `python -m scripts "
                "agentcore` with its ids"
            )
        return ("DRIFT", "; ".join(drift)) if drift else ("OK", str(pool_id))

    def client(client_id: str | None) -> Check:
        def check() -> tuple[str, str]:
            if "pool" not in state:
                return "MISSING", "no user pool"
            found_id = client_id or cognito.find_client(idp, state["pool"], args.client_name)
            found = cognito.described_client(idp, state["pool"], found_id) if found_id else None
            if found is None:
                return "MISSING", f"no app client with that {'id' if client_id else 'name'} in the pool"
            # A production client may omit USER_PASSWORD_AUTH; only security drift counts here.
            drift = cognito.client_drift(found, cognito.auth_flows(True), id_tokens=args.id_tokens)
            drift = [d for d in drift if "auth flows" not in d]
            if drift:  # cognito setup only reports an existing client's drift
                state["cognito_fix"] = (
                    "a new app client (`python -m scripts cognito setup` never changes an existing one): "
                    f"`python -m scripts cognito setup --pool-name {state['pool_name']} --client-name <new name>`, "
                    "then `python -m scripts agentcore` with its id as --client-id"
                )
            return ("DRIFT", "; ".join(drift)) if drift else ("OK", str(found_id))

        return check

    def role() -> tuple[str, str]:
        found = existing_role(iam, args.role_name)
        if found is None:
            return "MISSING", "no TVM role"
        statements = _statements(found["AssumeRolePolicyDocument"])
        tagged = statements and all(
            f"aws:RequestTag/{tvm_role.TENANT_TAG}" in canonical(s.get("Condition", {})) for s in statements
        )
        if not tagged:
            return "DRIFT", "trust policy does not require the TenantID session tag"
        if not any(_allows(s, "sts:TagSession") for s in statements):
            return "DRIFT", "trust policy does not allow sts:TagSession: STS refuses the TVM's tagged AssumeRole"
        deleted = [p for s in statements for p in _aws_principals(s) if not p.startswith("arn:")]
        if deleted:  # IAM shows a deleted principal's unique id; a re-created role does not match it
            return "DRIFT", f"trust policy names a deleted role or user ({', '.join(deleted)}): STS refuses its successor"
        try:
            current = iam.get_role_policy(RoleName=args.role_name, PolicyName=tvm_role.POLICY_NAME)[
                "PolicyDocument"
            ]
        except ClientError as err:
            if is_not_found(err):
                return "DRIFT", f"inline policy {tvm_role.POLICY_NAME} missing"
            raise
        # Without outbox arguments, the outbox the role grants (if any) is the one checked; without
        # a key, the key the role grants for that bucket (the app's AGENT_OUTBOX_KMS_KEY_ID).
        outbox = (args.outbox_bucket, args.outbox_prefix, args.outbox_kms_key_arn)
        granted = _granted_outbox(current)
        if not args.outbox_bucket:
            outbox = granted or outbox
        elif not args.outbox_kms_key_arn and granted and granted[0] == args.outbox_bucket:
            outbox = (args.outbox_bucket, args.outbox_prefix, granted[2])
        checked["outbox"] = outbox
        try:
            expected = tvm_role.permission_policy(
                region,
                account_id(region),
                args.bucket,
                outbox_bucket=outbox[0],
                outbox_prefix=outbox[1],
                outbox_kms_key_arn=outbox[2],
            )
        except ScriptError as err:  # e.g. a granted key of another region
            return "DRIFT", f"inline policy {tvm_role.POLICY_NAME}: {err}"
        if canonical(current) != canonical(expected):
            return "DRIFT", f"inline policy {tvm_role.POLICY_NAME} differs from the ABAC policy"
        extra = tvm_role.extra_policies(iam, args.role_name)
        if extra:  # tvm-role leaves them in place: its re-run is no fix
            state["tvm_fix"] = "; ".join(_removal(args.role_name, policy) for policy in extra)
            return "DRIFT", f"other policies apply to every tenant session: {', '.join(extra)} (remove them)"
        return "OK", str(found["Arn"])

    def bucket() -> tuple[str, str]:
        return ("OK", args.bucket) if vector_bucket_exists(s3v, args.bucket) else ("MISSING", "no vector bucket")

    def outbox() -> tuple[str, str]:
        s3 = aws_client("s3", region)
        state_of = outbox_bucket_state(s3, args.outbox_bucket)
        if state_of is None:
            return "MISSING", "no outbox bucket"
        bucket_in = bucket_region(s3, args.outbox_bucket)
        if bucket_in != region:  # vector-bucket only reports it: a bucket cannot move
            state["outbox_fix"] = (
                f"`python -m scripts vector-bucket --bucket {args.bucket} --outbox-bucket <new name>` (in {region}), "
                "then `python -m scripts tvm-role` and `python -m scripts agentcore` with that --outbox-bucket"
            )
            return "DRIFT", region_drift(bucket_in, region)
        if versioning_enabled(s3, args.outbox_bucket):  # vector-bucket only reports it
            state["outbox_fix"] = (
                shlex.join(["aws", "s3api", "put-bucket-versioning", "--bucket", args.outbox_bucket,
                            "--versioning-configuration", "Status=Suspended"])
                + "; then a lifecycle rule expiring noncurrent versions (aws s3api put-bucket-lifecycle-configuration)"
            )
            return "DRIFT", VERSIONING_DRIFT
        missing = [name for name, ok in state_of.items() if not ok]
        return ("DRIFT", f"not {' and not '.join(missing)}") if missing else ("OK", "encrypted, private")

    grant = f"`python -m scripts agentcore ... --secrets-id {args.secrets_id}` to grant the execution role"

    def secret() -> tuple[str, str]:
        found = described_secret(args.secrets_id, region)
        if found is None:
            return "MISSING", "no such secret"
        if found.unreadable:
            problem, state["secret_fix"] = found.unreadable
            return "MISSING", problem
        where = f"secret {args.secrets_id}"
        sm = aws_client("secretsmanager", found.region)
        try:
            parse_secret_settings(where, sm.get_secret_value(SecretId=found.arn).get("SecretString"), secret_settings())
        except SecretSettingsError as err:
            return "DRIFT", str(err).removeprefix(f"{where}: ")
        except ClientError as err:
            if error_code(err) != "DecryptionFailure":
                raise
            state["secret_fix"] = (
                f"enable its KMS key {found.kms_key_arn or 'aws/secretsmanager'} and let Secrets Manager use it "
                "(the key's policy), then run doctor again"
            )
            return "DRIFT", "AWS KMS cannot decrypt it (its key disabled or refusing Secrets Manager)"
        named = ROLE_ARN.fullmatch(args.execution_role_arn or "")  # checked by _role_arn when given
        role_name = named["name"] if named else runtime_role.DEFAULT_ROLE_NAME
        try:
            granted = _statements(
                iam.get_role_policy(RoleName=role_name, PolicyName=agentcore_cmd.POLICY_NAME)["PolicyDocument"]
            )
        except ClientError as err:
            if is_not_found(err):
                state["secret_fix"] = grant
                return "DRIFT", f"execution role {role_name} has no inline policy {agentcore_cmd.POLICY_NAME}"
            raise
        have = {canonical(s) for s in granted}
        missing = [s["Sid"] for s in secret_statements(found) if canonical(s) not in have]
        if missing:
            state["secret_fix"] = grant
            return "DRIFT", f"execution role {role_name} may not read it (no {', '.join(missing)} statement)"
        return "OK", found.arn

    def onboard(tenant: str) -> str:
        return f"python -m scripts tenant onboard --bucket {args.bucket} --tenant {tenant} --dimension {args.dimension}"

    def index(tenant: str) -> Check:
        def check() -> tuple[str, str]:
            name = index_name_for(tenant)
            found = get_index(s3v, args.bucket, name)
            if found is None:
                return "MISSING", "no index"
            drift = index_drift(found, create_index_params(args.bucket, name, args.dimension))
            if drift:  # tenant onboard only reports these: the index must be made again
                state["index_fix"] = (
                    f"not in place (`tenant onboard` only reports it): `python -m scripts tenant offboard --bucket "
                    f"{args.bucket} --tenant {tenant} --yes` (deletes the tenant's memories), then `{onboard(tenant)}`"
                )
            if filters_during_search(found):
                drift.append("indexMode is CLASSIC (user filter applied during the search), wanted ENHANCED")
            return ("DRIFT", "; ".join(drift)) if drift else ("OK", f"dimension {args.dimension}")

        return check

    def model(model_id: str) -> Check:
        def check() -> tuple[str, str]:
            try:
                if model_id.startswith(PROFILE_PREFIXES):
                    bedrock.get_inference_profile(inferenceProfileIdentifier=model_id)
                else:
                    bedrock.get_foundation_model(modelIdentifier=model_id)
            except ClientError as err:
                if is_not_found(err) or "ValidationException" == err.response.get("Error", {}).get("Code"):
                    return "MISSING", "model not available in this region"
                raise
            return "OK", "available"

        return check

    setup = "python -m scripts cognito setup"
    if args.pool_id:  # the deployed settings name the pool and clients by id
        setup += ", then `python -m scripts agentcore` with the ids it prints"

    def cognito_fix() -> str:  # a drift's own fix (set by its check), else the setup command
        return state.pop("cognito_fix", setup)

    run_check(report, f"user pool {args.pool_id or args.pool_name}", pool, cognito_fix)
    for client_id in args.client_ids or [None]:
        run_check(report, f"app client {client_id or args.client_name}", client(client_id), cognito_fix)
    if args.tenant_mode == "multi":
        run_check(
            report,
            f"TVM role {args.role_name}",
            role,
            lambda: state.get("tvm_fix") or _tvm_role_fix(args, checked.get("outbox")),
        )
    run_check(
        report,
        f"vector bucket {args.bucket}",
        bucket,
        f"python -m scripts vector-bucket --bucket {args.bucket}",
    )
    if args.outbox_bucket:
        run_check(
            report,
            f"outbox bucket {args.outbox_bucket}",
            outbox,
            lambda: state.pop("outbox_fix", None)
            or f"python -m scripts vector-bucket --bucket {args.bucket} --outbox-bucket {args.outbox_bucket}",
        )
    if args.secrets_id:
        run_check(
            report,
            f"secret {args.secrets_id}",
            secret,
            lambda: state.pop("secret_fix", None)
            or "store a JSON object of AGENT_LOG_HASH_KEY / AGENT_MODEL_API_KEY in it (aws secretsmanager "
            f"create-secret or put-secret-value), then {grant}",
        )
    for tenant in tenants:
        run_check(
            report,
            f"index {index_name_for(tenant)}",
            index(tenant),
            lambda: state.pop("index_fix", None) or onboard(tenant),
        )
    for model_id in args.model_id:
        run_check(
            report,
            f"model {model_id}",
            model(model_id),
            "enable model access in the Bedrock console (Model access) for this region",
        )
    return report


def _granted_outbox(policy: dict) -> tuple[str, str, str | None] | None:
    """The outbox bucket, prefix and KMS key an ABAC policy grants (None if it grants none)."""
    resources = {s.get("Sid"): s.get("Resource") for s in _statements(policy)}
    granted = resources.get("OwnTenantOutboxObjectsOnly", "")
    first = granted[0] if isinstance(granted, list) and granted else granted  # a list since markers are read-only
    objects = _OUTBOX_OBJECTS.fullmatch(str(first))
    if objects is None:
        return None
    key = resources.get("OutboxKmsKeyThroughS3Only")
    return objects["bucket"], objects["prefix"], key if isinstance(key, str) else None


#: The (first) object resource that ``tvm_role.permission_policy`` writes, or the tenant-wide one of
#: earlier versions (whose drift is then reported against the policy of the outbox it grants).
_OUTBOX_OBJECTS = re.compile(
    r"arn:aws:s3:::(?P<bucket>[^/]+)/(?P<prefix>[^/]+)/\$\{aws:PrincipalTag/" + tvm_role.TENANT_TAG + r"\}/([a-z]+/)?\*"
)


def _tvm_role_fix(args: argparse.Namespace, outbox: tuple[str | None, str, str | None] | None = None) -> str:
    """The ``tvm-role`` command that writes the policy this check expects (outbox included: the
    one checked, which without ``--outbox-bucket`` is the one the role grants)."""
    bucket, prefix, key = outbox or (args.outbox_bucket, args.outbox_prefix, args.outbox_kms_key_arn)
    argv = ["python", "-m", "scripts", "tvm-role", "--bucket", args.bucket]
    if args.role_name != tvm_role.DEFAULT_ROLE_NAME:
        argv += ["--role-name", args.role_name]
    if bucket:
        argv += ["--outbox-bucket", bucket, "--outbox-prefix", prefix]
    if key:
        argv += ["--outbox-kms-key-arn", key]
    return f"{shlex.join(argv)} --execution-role-arn <runtime role ARN>"


def _removal(role_name: str, policy: str) -> str:
    """The IAM call that takes ``policy`` (an inline policy's name or an attached policy's ARN) off the role."""
    if policy.startswith("arn:"):
        return shlex.join(["aws", "iam", "detach-role-policy", "--role-name", role_name, "--policy-arn", policy])
    return shlex.join(["aws", "iam", "delete-role-policy", "--role-name", role_name, "--policy-name", policy])


def _allows(statement: dict, action: str) -> bool:
    """Whether an Allow statement names ``action`` (IAM matches actions case-insensitively, with wildcards)."""
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return statement.get("Effect") == "Allow" and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)


def _aws_principals(statement: dict) -> list[str]:
    """The ``AWS`` principals a trust statement names."""
    principal = statement.get("Principal", {})
    named = principal.get("AWS", []) if isinstance(principal, dict) else []
    return [named] if isinstance(named, str) else list(named)


def _statements(doc: object) -> list[dict]:
    if isinstance(doc, str):
        doc = json.loads(doc)
    statements = doc.get("Statement", []) if isinstance(doc, dict) else []
    return [statements] if isinstance(statements, dict) else list(statements)
