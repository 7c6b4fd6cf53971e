"""Tokens issued by moto's Cognito (server mode) pass the same verifier, so claim mapping matches."""

from __future__ import annotations

import urllib.request
from typing import Any, Iterator

import boto3
import jwt
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from auth import AuthError, TokenVerifier
from auth.dev_issuer import DEV_CLIENT_ID, DevIssuer

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        server.stop()


@pytest.fixture(scope="module")
def cognito(moto_endpoint: str) -> dict[str, Any]:
    """A pool with custom attribute tenantId, an app client and a signed-in user's tokens."""
    client = boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"mode": "adaptive", "max_attempts": 2}, connect_timeout=5, read_timeout=10
        ),
    )
    pool_id = client.create_user_pool(
        PoolName="memory-users",
        Schema=[{"Name": "tenantId", "AttributeDataType": "String", "Mutable": False}],
    )["UserPool"]["Id"]
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id, ClientName="agent", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    client.admin_create_user(
        UserPoolId=pool_id,
        Username="alice",
        UserAttributes=[
            {"Name": "custom:tenantId", "Value": "tenant-001"},
            {"Name": "email", "Value": "alice@example.com"},
        ],
        MessageAction="SUPPRESS",
    )
    client.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password="Passw0rd!Passw0rd", Permanent=True
    )
    tokens = client.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Passw0rd!Passw0rd"},
    )["AuthenticationResult"]
    sub = next(
        a["Value"]
        for a in client.admin_get_user(UserPoolId=pool_id, Username="alice")["UserAttributes"]
        if a["Name"] == "sub"
    )
    return {"pool_id": pool_id, "client_id": client_id, "sub": sub, **tokens}


@pytest.fixture
def moto_verifier(moto_endpoint: str, cognito: dict[str, Any]) -> TokenVerifier:
    # moto signs with the real Cognito issuer format; only the JWKS comes from the local server.
    return TokenVerifier.for_cognito(
        REGION,
        cognito["pool_id"],
        client_ids=[cognito["client_id"]],
        jwks_url=f"{moto_endpoint}/{cognito['pool_id']}/.well-known/jwks.json",
    )


def test_moto_issuer_matches_cognito_format(cognito: dict[str, Any]) -> None:
    claims = jwt.decode(cognito["IdToken"], options={"verify_signature": False})
    assert claims["iss"] == f"https://cognito-idp.{REGION}.amazonaws.com/{cognito['pool_id']}"


def test_moto_id_token_maps_tenant_and_user(
    moto_verifier: TokenVerifier, cognito: dict[str, Any]
) -> None:
    identity = moto_verifier.verify(f"Bearer {cognito['IdToken']}")
    assert identity.tenant_id == "tenant-001"
    assert identity.user_id == cognito["sub"]
    assert (identity.token_use, identity.client_id) == ("id", cognito["client_id"])


def test_moto_access_token_without_tenant_claim_is_rejected(
    moto_verifier: TokenVerifier, cognito: dict[str, Any]
) -> None:
    with pytest.raises(AuthError) as info:
        moto_verifier.verify(cognito["AccessToken"])
    assert info.value.reason == "missing_tenant"  # signature, issuer and client_id all passed


def test_moto_token_rejected_for_another_app_client(
    moto_endpoint: str, cognito: dict[str, Any]
) -> None:
    other = TokenVerifier.for_cognito(
        REGION,
        cognito["pool_id"],
        client_ids=["some-other-client"],
        jwks_url=f"{moto_endpoint}/{cognito['pool_id']}/.well-known/jwks.json",
    )
    with pytest.raises(AuthError) as info:
        other.verify(cognito["IdToken"])
    assert info.value.reason == "wrong_audience"


def test_for_cognito_derives_issuer_and_jwks_url() -> None:
    verifier = TokenVerifier.for_cognito("eu-west-1", "eu-west-1_Abc", client_ids=["c1"])
    assert verifier.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
    assert verifier.keys.url == f"{verifier.issuer}/.well-known/jwks.json"  # type: ignore[attr-defined]


def test_for_cognito_with_a_local_jwks_file(tmp_path: Any) -> None:
    dev = DevIssuer(tmp_path)
    verifier = TokenVerifier.for_cognito(
        "eu-west-1", "eu-west-1_Abc", [DEV_CLIENT_ID], jwks_file=dev.jwks_path
    )
    with pytest.raises(AuthError) as info:  # signature checks out against the file's key...
        verifier.verify(dev.mint("tenant-001", "alice"))
    assert info.value.reason == "wrong_issuer"  # ...but the pool's issuer is enforced
