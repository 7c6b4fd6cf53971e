"""The dev issuer: key + JWKS state, minted tokens accepted by the verifier, the CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from auth import AuthError
from auth.dev_issuer import DEV_CLIENT_ID, DEV_ISSUER, DevIssuer, main


def test_state_created_once_with_private_key_0600(tmp_path: Path) -> None:
    state = tmp_path / "issuer"
    first = DevIssuer(state)
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    key_before, jwks_before = first.key_path.read_bytes(), first.jwks_path.read_text()
    second = DevIssuer(state)  # idempotent: same key, same JWKS, same kid
    assert second.kid == first.kid
    assert (second.key_path.read_bytes(), second.jwks_path.read_text()) == (key_before, jwks_before)
    assert "PRIVATE" not in jwks_before and '"d"' not in jwks_before


def test_state_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_DEV_STATE_DIR", str(tmp_path / "env-state"))
    assert DevIssuer().jwks_path == tmp_path / "env-state" / "jwks.json"


def test_minted_id_token_looks_like_cognito_and_verifies(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    token = issuer.mint("tenant-001", "alice", ttl=120)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}
    assert claims["iss"] == DEV_ISSUER and claims["aud"] == DEV_CLIENT_ID
    assert (claims["token_use"], claims["custom:tenantId"], claims["sub"]) == (
        "id",
        "tenant-001",
        "alice",
    )
    assert claims["exp"] - claims["iat"] == 120
    identity = issuer.verifier().verify(f"Bearer {token}")
    assert (identity.tenant_id, identity.user_id, identity.token_use) == (
        "tenant-001",
        "alice",
        "id",
    )


def test_minted_access_token_verifies(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    token = issuer.mint("tenant-002", "bob", token_use="access", client_id="other-app")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "aud" not in claims and "custom:tenantId" not in claims
    identity = issuer.verifier(client_ids=["other-app"]).verify(token)
    assert (identity.tenant_id, identity.user_id, identity.client_id) == (
        "tenant-002",
        "bob",
        "other-app",
    )
    with pytest.raises(AuthError) as info:
        issuer.verifier().verify(token)
    assert info.value.reason == "wrong_client"


def test_expired_dev_token_rejected(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    with pytest.raises(AuthError) as info:
        issuer.verifier().verify(issuer.mint("tenant-001", "alice", ttl=-60))
    assert info.value.reason == "expired"


def test_other_issuers_tokens_rejected(tmp_path: Path) -> None:
    mine, other = DevIssuer(tmp_path / "a"), DevIssuer(tmp_path / "b")
    with pytest.raises(AuthError) as info:
        mine.verifier().verify(other.mint("tenant-001", "alice"))
    assert info.value.reason == "unknown_key"


def test_reinitialised_state_is_picked_up_by_a_running_verifier(tmp_path: Path) -> None:
    verifier = DevIssuer(tmp_path).verifier()
    for name in ("private_key.pem", "jwks.json"):
        (tmp_path / name).unlink()
    fresh = DevIssuer(tmp_path)
    os.utime(fresh.jwks_path, ns=(1, 1))  # a different mtime even on coarse-grained clocks
    assert verifier.verify(fresh.mint("tenant-001", "alice")).user_id == "alice"


def test_mint_refuses_invalid_tenant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and single inner hyphens"):
        DevIssuer(tmp_path).mint("Tenant 1", "alice")


def test_cli_mint_prints_only_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--state-dir", str(tmp_path), "mint", "--tenant", "tenant-001", "--user", "alice"]
    assert main([*argv, "--token-use", "access", "--email", "a@x.io", "--group", "ops"]) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert out == token + "\n" and token.count(".") == 2
    identity = DevIssuer(tmp_path).verifier().verify(token)
    assert (identity.token_use, identity.email, identity.groups) == ("access", "a@x.io", ("ops",))


def test_cli_init_and_jwks_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state-dir", str(tmp_path), "init"]) == 0
    assert main(["--state-dir", str(tmp_path), "init"]) == 0
    capsys.readouterr()
    assert main(["--state-dir", str(tmp_path), "jwks-path"]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "jwks.json").resolve())


def test_cli_invalid_tenant_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state-dir", str(tmp_path), "mint", "--tenant", "BAD", "--user", "u"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "tenant id" in captured.err


def test_cli_as_module_with_env_state_dir(tmp_path: Path) -> None:
    env = {**os.environ, "AUTH_DEV_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "auth.dev_issuer",
            "mint",
            "--tenant",
            "tenant-001",
            "--user",
            "alice",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        check=True,
        timeout=60,
    )
    assert DevIssuer(tmp_path).verifier().verify(result.stdout.strip()).user_id == "alice"


def test_a_process_starting_while_the_key_is_generated_shares_that_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README starts the app and runs ``mint`` at once on a fresh state directory: whichever
    comes second must read a complete key, never the first one's empty, still unwritten file."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    state = tmp_path / "issuer"
    generate = rsa.generate_private_key
    calls: list[int] = []
    others: list[DevIssuer] = []

    def generate_while_another_process_starts(**kwargs: int) -> rsa.RSAPrivateKey:
        calls.append(1)
        key = generate(**kwargs)
        if len(calls) == 1:  # the other "process" starts during the first generation only
            others.append(DevIssuer(state))
        return key

    monkeypatch.setattr(rsa, "generate_private_key", generate_while_another_process_starts)
    first = DevIssuer(state)
    assert first.kid == others[0].kid
    identity = first.verifier().verify(f"Bearer {others[0].mint('tenant-001', 'alice')}")
    assert identity.user_id == "alice"
    assert sorted(p.name for p in state.iterdir()) == ["jwks.json", "private_key.pem"]  # no temp file left


@pytest.mark.parametrize("command", ["init", "jwks-path", "mint"])
def test_every_subcommand_s_help_says_what_it_does(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m auth.dev_issuer mint --help`` (the README's first-run path mints with it)
    showed usage and options only: each subcommand's help opens with the line ``--help`` lists."""
    with pytest.raises(SystemExit) as listed:
        main(["--help"])
    assert listed.value.code == 0
    summary = next(line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()
                   if line.split(None, 1)[:1] == [command])
    with pytest.raises(SystemExit) as helped:
        main([command, "--help"])
    assert helped.value.code == 0
    assert f"\n\n{summary}\n\n" in capsys.readouterr().out
