"""``AGENT_SECRETS_ID``: the deployment's secret settings, read once at start-up from AWS Secrets Manager.

The deployed app's settings travel in ``agentcore.env``, which is uploaded with the source and
so may hold no secret, and ``agentcore launch`` sends no environment. ``AGENT_SECRETS_ID`` (in
that file: it names a secret, it is not one) is the ARN or name of one secret whose
``SecretString`` is a JSON object keyed by the env names of the secret settings, e.g.
``{"AGENT_LOG_HASH_KEY": "...", "AGENT_MODEL_API_KEY": "..."}``. It is read with the runtime's
own credentials (``GetSecretValue``; ``kms:Decrypt`` too when the secret has a customer managed
key) before the settings are validated; a value set in the process environment wins over it.

Anything unexpected stops start-up with a message naming the secret id and what to fix, never a
value: an id GetSecretValue cannot take (longer than 2,048 characters, or with a character no
secret name or ARN has, such as a pasted JSON value's: named by its length only, as it may be a
pasted value), a missing secret, one scheduled for deletion or without a value, a denial (of the secret
or of its KMS key), a binary, non-JSON or non-object secret, a key that is not a secret setting,
a value that is not a non-empty string or has a control character or whitespace at an end.
"""

from __future__ import annotations

import json
import re
from typing import Any, Collection

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from memory.aws import error_code, make_client

SECRETS_ID_ENV = "AGENT_SECRETS_ID"
#: GetSecretValue's longest SecretId (an ARN or name); botocore does not check it.
MAX_SECRET_ID_LENGTH = 2048
#: A secret's name or ARN (a name: ASCII letters, digits and ``/_+=.@-``; an ARN adds ``:``).
_SECRET_ID = re.compile(rf"[A-Za-z0-9/_+=.@:-]{{1,{MAX_SECRET_ID_LENGTH}}}")
#: A secret's ARN: ``arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 chars>``.
SECRET_ARN = re.compile(r"arn:aws[\w-]*:secretsmanager:(?P<region>[a-z0-9-]+):\d{12}:secret:.+")
#: What a key that names a setting looks like (any other key is not echoed: it may be a value).
_SETTING_NAME = re.compile(r"AGENT_[A-Z0-9_]{1,60}")
#: A character no key or token holds: C0/C1 controls (a newline, a tab), Unicode line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DENIED = {"AccessDeniedException", "AccessDenied", "403"}
#: The version GetSecretValue reads without a VersionStage or VersionId.
CURRENT_STAGE = "AWSCURRENT"
#: The service's ResourceNotFoundException message when the secret has no such version ("Secrets
#: Manager can't find the specified secret value for staging label: AWSCURRENT").
_NO_VALUE = "secret value for staging label"
#: Secrets Manager's code when KMS refuses to decrypt the secret (the key disabled, or denied).
_KMS_REFUSED = {"DecryptionFailure", "KMSAccessDeniedException"}


class SecretSettingsError(ValueError):
    """The secret named by ``AGENT_SECRETS_ID`` cannot be read or holds something unexpected."""


def secret_region(secret_id: str, default: str) -> str:
    """The region of ``secret_id``: an ARN's own, else ``default`` (the app's region)."""
    named = SECRET_ARN.fullmatch(secret_id)
    return named["region"] if named else default


def read_secret_settings(secret_id: str, *, region: str, allowed: Collection[str]) -> dict[str, str]:
    """The settings the secret ``secret_id`` holds, by env name.

    Args:
        secret_id: the secret's ARN or name (``AGENT_SECRETS_ID``).
        region: the app's region, used unless ``secret_id`` is an ARN.
        allowed: the env names a secret may set (the ``SecretStr`` settings').

    Raises:
        SecretSettingsError: the secret cannot be read, or is not a JSON object of ``allowed``
            names with non-empty string values. The message never contains a value.
    """
    check_secret_id(secret_id)
    where = f"{SECRETS_ID_ENV} {secret_id}"
    try:
        client = make_client("secretsmanager", region=secret_region(secret_id, region))
    except BotoCoreError as exc:  # e.g. InvalidRegionError: a malformed AGENT_REGION
        raise SecretSettingsError(f"{where}: {exc}") from None
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        raise SecretSettingsError(_refusal(where, exc)) from None
    except ParamValidationError:
        raise SecretSettingsError(_invalid_id(secret_id)) from None
    except NoCredentialsError:
        raise SecretSettingsError(
            f"{where}: no AWS credentials to read it (run with credentials that may read the secret, or "
            f"unset {SECRETS_ID_ENV} and set the secret settings in the environment)"
        ) from None
    except BotoCoreError as exc:
        raise SecretSettingsError(f"{where}: cannot reach AWS Secrets Manager ({type(exc).__name__})") from None
    return parse_secret_settings(where, response.get("SecretString"), allowed)


def check_secret_id(secret_id: str, name: str = SECRETS_ID_ENV) -> str:
    """``secret_id`` if it can be a secret's name or ARN.

    Args:
        secret_id: the id to check.
        name: where it was given (``AGENT_SECRETS_ID``, ``--secrets-id``), for the message.

    Raises:
        SecretSettingsError: it is empty, longer than GetSecretValue takes, or has a character no
            name or ARN has (a pasted value's ``{``, ``"`` or space). The message names its length
            only, never a part of it: it may be the secret's value.
    """
    if not _SECRET_ID.fullmatch(secret_id):
        raise SecretSettingsError(_invalid_id(secret_id, name))
    return secret_id


def _invalid_id(secret_id: str, name: str = SECRETS_ID_ENV) -> str:
    """The message for an id GetSecretValue cannot take; it names no part of the id (it may be a
    pasted value)."""
    return (
        f"{name} is not a secret id ({len(secret_id)} characters): set it to the ARN or name of the "
        f"secret, 1-{MAX_SECRET_ID_LENGTH} characters (letters, digits, /_+=.@- and an ARN's :), not its value"
    )


def _refusal(where: str, exc: ClientError) -> str:
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        if _NO_VALUE in str(exc):  # the secret exists, created without a value
            return (
                f"{where}: the secret has no value (no {CURRENT_STAGE} version): store the JSON object "
                "with aws secretsmanager put-secret-value"
            )
        return f"{where}: no such secret in this account and region (create it, or fix the id)"
    if code == "InvalidRequestException":  # GetSecretValue's one state refusal: scheduled for deletion
        return (
            f"{where}: the secret is scheduled for deletion: cancel that with aws secretsmanager "
            "restore-secret, or name another secret"
        )
    if code in _KMS_REFUSED or (code in _DENIED and "KMS" in str(exc)):  # "Access to KMS is not allowed"
        return (
            f"{where}: AWS KMS refused to decrypt the secret: the runtime role needs kms:Decrypt on the "
            "secret's customer managed key (and the key must be enabled and allow it)"
        )
    if code in _DENIED:
        return f"{where}: access denied: the runtime role needs secretsmanager:GetSecretValue on this secret"
    return f"{where}: GetSecretValue failed ({code or type(exc).__name__})"


def parse_secret_settings(where: str, text: Any, allowed: Collection[str]) -> dict[str, str]:
    """The settings of a secret's ``SecretString`` ``text`` (``doctor`` checks a secret with it).

    Args:
        where: what the messages name (the setting and the secret id).
        text: the ``SecretString`` (None for a binary secret).
        allowed: the env names the secret may set.

    Raises:
        SecretSettingsError: ``text`` is not a JSON object of ``allowed`` names with non-empty
            string values free of surrounding whitespace and control characters (an API key
            goes into an HTTP header, whose client quotes a bad one in its error); the message
            names no value.
    """
    if not isinstance(text, str):
        raise SecretSettingsError(f"{where}: the secret has no SecretString (a binary secret?); store a JSON object")
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the interpreter's limit
        raise SecretSettingsError(f"{where}: the secret is not JSON; store a JSON object of settings") from None
    if not isinstance(values, dict):
        raise SecretSettingsError(f"{where}: the secret must be a JSON object of settings, not a {type(values).__name__}")
    names = ", ".join(sorted(allowed))
    for key, value in values.items():
        if key not in allowed:
            shown = key if _SETTING_NAME.fullmatch(key) else "a key that is not a setting name"
            raise SecretSettingsError(f"{where}: {shown} is not a secret setting (allowed keys: {names})")
        if not isinstance(value, str) or not value:
            raise SecretSettingsError(f"{where}: the value of {key} must be a non-empty string")
        if value != value.strip() or _CONTROL.search(value):
            raise SecretSettingsError(
                f"{where}: the value of {key} has a control character or whitespace at an end (a pasted "
                "newline?); store it without"
            )
    return values
