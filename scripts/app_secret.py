"""The app's secret (``AGENT_SECRETS_ID``): find it, and what the execution role needs to read it.

``agentcore --secrets-id`` resolves a name to the secret's full ARN (``DescribeSecret``; IAM
matches the ARN with its random six-character suffix) and grants the execution role
``secretsmanager:GetSecretValue`` on exactly that ARN. ``kms:Decrypt`` is added only for a
customer managed key: Secrets Manager's docs say ``GetSecretValue`` needs it "only if you use a
customer-created KMS key", while the AWS managed ``aws/secretsmanager`` key's policy lets any
principal of the account that may use Secrets Manager decrypt through it. The key may be used
through Secrets Manager only (``kms:ViaService``), so only within a ``GetSecretValue`` the role
is allowed, i.e. for this secret. (AWS's ``AWSSecretsManagerClientReadOnlyAccess`` also
conditions on ``kms:EncryptionContext:SecretARN``; the IAM policy simulator the tests use cannot
evaluate that key, and it adds nothing here, so it is left out.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from agent.secret_settings import CURRENT_STAGE, secret_region
from scripts.common import aws_client, is_not_found

READ_SID = "ReadAppSecret"
DECRYPT_SID = "DecryptAppSecretThroughSecretsManagerOnly"


@dataclass(frozen=True)
class AppSecret:
    """A secret as the execution role's policy names it."""

    arn: str
    #: The customer managed KMS key's ARN; None with the AWS managed key ``aws/secretsmanager``.
    kms_key_arn: str | None = None
    #: Why ``GetSecretValue`` refuses it for now, and the command that mends it (None: it does not).
    unreadable: tuple[str, str] | None = None

    @property
    def region(self) -> str:
        """The secret's region (from its ARN)."""
        return self.arn.split(":")[3]


def described_secret(secret_id: str, region: str) -> AppSecret | None:
    """The secret ``secret_id`` (an ARN, or a name in ``region``), None if there is none.

    Its KMS key (``KmsKeyId``: absent for ``aws/secretsmanager``; else a key id, ARN or alias)
    is resolved with KMS ``DescribeKey``, and kept only when it is a customer managed key.
    ``DescribeSecret`` also finds a secret that ``GetSecretValue`` refuses, so the app could not
    start with it: one scheduled for deletion (``DeletedDate``; ``InvalidRequestException``) and
    one without a value (no version labelled ``AWSCURRENT``; ``ResourceNotFoundException``).
    """
    where = secret_region(secret_id, region)
    try:
        found = aws_client("secretsmanager", where).describe_secret(SecretId=secret_id)
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    arn = str(found["ARN"])
    key = found.get("KmsKeyId")
    key_arn = None
    if key:
        metadata = aws_client("kms", where).describe_key(KeyId=key)["KeyMetadata"]
        key_arn = str(metadata["Arn"]) if metadata.get("KeyManager") == "CUSTOMER" else None
    return AppSecret(arn, key_arn, _unreadable(found, arn))


def _unreadable(described: dict[str, Any], arn: str) -> tuple[str, str] | None:
    if described.get("DeletedDate"):
        return (
            f"scheduled for deletion on {described['DeletedDate']:%Y-%m-%d}",
            f"aws secretsmanager restore-secret --secret-id {arn}",
        )
    if not any(CURRENT_STAGE in stages for stages in (described.get("VersionIdsToStages") or {}).values()):
        return (
            f"it has no value (no {CURRENT_STAGE} version)",
            f"aws secretsmanager put-secret-value --secret-id {arn} --secret-string <a JSON object of secret settings>",
        )
    return None


def secret_statements(secret: AppSecret) -> list[dict[str, Any]]:
    """The execution role's statements to read ``secret`` (and decrypt it with its own key)."""
    statements: list[dict[str, Any]] = [
        {"Sid": READ_SID, "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret.arn}
    ]
    if secret.kms_key_arn:
        statements.append(
            {
                "Sid": DECRYPT_SID,
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": secret.kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{secret.region}.amazonaws.com"}},
            }
        )
    return statements
