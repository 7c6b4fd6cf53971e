"""The local JWKS file keeps only signing keys with an id (RFC 7517 ``use``: "sig" or absent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from auth import AuthError, TokenVerifier
from auth.dev_issuer import public_jwk
from auth.jwks import JwksFileKeys
from tests.unit.auth.conftest import CLIENT_ID, ISSUER


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("sig", "bare", "enc")}


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey]) -> Path:
    def jwk(name: str, **fields: Any) -> dict[str, Any]:
        data = {**public_jwk(keys[name].public_key()), "kid": name, **fields}
        return {k: v for k, v in data.items() if v is not None}

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [
        jwk("sig"),  # use "sig"
        jwk("bare", use=None),  # no "use": allowed for signatures
        jwk("enc", use="enc"),  # an encryption key must never verify a token
        {**jwk("sig"), "kid": None},  # a key without an id cannot be selected
    ]}))
    return path


def test_only_signing_keys_with_an_id_are_kept(jwks_file: Path) -> None:
    source = JwksFileKeys(jwks_file)
    assert source.signing_key("sig").key_id == "sig"
    assert source.signing_key("bare").key_id == "bare"
    with pytest.raises(AuthError) as info:
        source.signing_key("enc")
    assert info.value.reason == "unknown_key"


def test_a_token_signed_with_the_encryption_key_is_refused(
    jwks_file: Path, keys: dict[str, rsa.RSAPrivateKey], make_token: Callable[..., str]
) -> None:
    verifier = TokenVerifier(ISSUER, client_ids=[CLIENT_ID], jwks_file=jwks_file)
    assert verifier.verify(make_token(key=keys["sig"], kid="sig")).user_id == "user-123"
    assert verifier.verify(make_token(key=keys["bare"], kid="bare")).user_id == "user-123"
    with pytest.raises(AuthError) as info:
        verifier.verify(make_token(key=keys["enc"], kid="enc"))
    assert info.value.reason == "unknown_key"
