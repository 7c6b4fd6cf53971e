"""cognito setup/create-user under moto: pool schema, client settings, idempotence, drift, users."""

from __future__ import annotations

import string

import boto3
import pytest

from scripts.cognito import DEFAULT_CLIENT_NAME, auth_flows, generate_password

SETUP = ("cognito", "setup", "--region", "us-east-1")


def _idp():
    return boto3.client("cognito-idp", region_name="us-east-1")


def _pool_id() -> str:
    pools = _idp().list_user_pools(MaxResults=60)["UserPools"]
    assert len(pools) == 1
    return pools[0]["Id"]


def test_setup_creates_pool_and_client_then_changes_nothing(aws, cli) -> None:
    first = cli(*SETUP)
    assert first.code == 0, first.err
    pool_id = _pool_id()
    assert (
        f"https://cognito-idp.us-east-1.amazonaws.com/{pool_id}/.well-known/openid-configuration" in first.out
    )

    pool = _idp().describe_user_pool(UserPoolId=pool_id)["UserPool"]
    attrs = {a["Name"]: a for a in pool["SchemaAttributes"]}
    assert attrs["custom:tenantId"]["Mutable"] is False
    assert attrs["custom:tenantName"]["Mutable"] is True and attrs["custom:tier"]["Mutable"] is True

    clients = _idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    assert len(clients) == 1
    client = _idp().describe_user_pool_client(UserPoolId=pool_id, ClientId=clients[0]["ClientId"])[
        "UserPoolClient"
    ]
    assert "ClientSecret" not in client
    assert sorted(client["ExplicitAuthFlows"]) == [
        "ALLOW_REFRESH_TOKEN_AUTH",
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
    ]
    assert "custom:tenantId" not in client["WriteAttributes"]
    assert "custom:tenantId" in client["ReadAttributes"]

    second = cli(*SETUP)
    assert second.code == 0
    assert "CREATED" not in second.out and "Nothing to change" in second.out
    assert len(_idp().list_user_pools(MaxResults=60)["UserPools"]) == 1


def test_production_flows_omit_password_auth() -> None:
    assert auth_flows(False) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]


def test_dry_run_creates_nothing(aws, cli) -> None:
    result = cli(*SETUP, "--dry-run")
    assert result.code == 0 and "WOULD CREATE" in result.out
    assert _idp().list_user_pools(MaxResults=60)["UserPools"] == []


def test_existing_pool_with_mutable_tenant_is_drift_and_kept(aws, cli) -> None:
    pool_id = _idp().create_user_pool(
        PoolName="agent-memory-users",
        Schema=[{"Name": "tenantId", "AttributeDataType": "String", "Mutable": True}],
    )["UserPool"]["Id"]
    result = cli(*SETUP)
    assert result.code == 3
    assert "DRIFT" in result.out and "custom:tenantId is mutable" in result.out
    assert "custom:tier missing" in result.out
    assert _pool_id() == pool_id  # never deleted or replaced


def test_existing_pool_open_to_self_sign_up_is_drift_and_kept(aws, cli) -> None:
    """With self sign-up on, anyone can create a user, and through any app client of the pool
    allowed to write custom:tenantId (a client made without WriteAttributes may write every
    attribute) give it the tenant they choose: an ID token from our client then names that
    tenant. Only the setting is reported (a pool with the rest as intended)."""
    cli(*SETUP)
    pool_id = _pool_id()
    _idp().update_user_pool(UserPoolId=pool_id, AdminCreateUserConfig={"AllowAdminCreateUserOnly": False})
    result = cli(*SETUP)
    assert result.code == 3
    drift = [line for line in result.out.splitlines() if line.startswith("DRIFT ")]
    assert len(drift) == 1 and "self sign-up is allowed" in drift[0], result.out
    config = _idp().describe_user_pool(UserPoolId=pool_id)["UserPool"]["AdminCreateUserConfig"]
    assert config["AllowAdminCreateUserOnly"] is False  # reported, not silently changed


def test_client_that_can_write_the_tenant_is_drift(aws, cli) -> None:
    cli(*SETUP)
    pool_id = _pool_id()
    client_id = _idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"][0][
        "ClientId"
    ]
    _idp().update_user_pool_client(
        UserPoolId=pool_id, ClientId=client_id, WriteAttributes=["email", "custom:tenantId"]
    )
    result = cli(*SETUP)
    assert result.code == 3 and "users can write custom:tenantId" in result.out
    client = _idp().describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    assert "custom:tenantId" in client["WriteAttributes"]  # reported, not silently rewritten


@pytest.mark.parametrize("read", [["email"], None])
def test_client_that_cannot_read_the_tenant_is_drift(aws, cli, read) -> None:
    """Id tokens carry only what the client may read; a client with no ReadAttributes reads the
    standard attributes only, never a custom one: every id token it issues names no tenant."""
    cli(*SETUP)
    pool_id = _pool_id()
    client_id = _idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"][0][
        "ClientId"
    ]
    _idp().delete_user_pool_client(UserPoolId=pool_id, ClientId=client_id)
    _idp().create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=DEFAULT_CLIENT_NAME,
        ExplicitAuthFlows=auth_flows(True),
        WriteAttributes=["email"],
        **({"ReadAttributes": read} if read else {}),
    )
    result = cli(*SETUP)
    assert result.code == 3 and "cannot read custom:tenantId" in result.out, result.out
    assert cli(*SETUP).code == 3  # reported again, never rewritten


def test_create_user_prints_password_once_and_user_can_log_in(aws, cli) -> None:
    cli(*SETUP)
    pool_id = _pool_id()
    result = cli(
        "cognito",
        "create-user",
        "--region",
        "us-east-1",
        "--tenant",
        "acme",
        "--email",
        "ann@acme.test",
        "--tier",
        "gold",
    )
    assert result.code == 0, result.err
    password = result.out.split("store it now): ")[1].split()[0]

    user = _idp().admin_get_user(UserPoolId=pool_id, Username="ann@acme.test")
    attrs = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert attrs["custom:tenantId"] == "acme" and attrs["custom:tier"] == "gold"
    assert user["UserStatus"] == "CONFIRMED"
    client_id = _idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"][0][
        "ClientId"
    ]
    tokens = _idp().initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "ann@acme.test", "PASSWORD": password},
    )
    assert "IdToken" in tokens["AuthenticationResult"]

    again = cli(
        "cognito", "create-user", "--region", "us-east-1", "--tenant", "acme", "--email", "ann@acme.test"
    )
    assert again.code == 0 and "UNCHANGED" in again.out
    assert "store it now" not in again.out and password not in again.out

    moved = cli(
        "cognito", "create-user", "--region", "us-east-1", "--tenant", "other", "--email", "ann@acme.test"
    )
    assert moved.code == 3 and "immutable" in moved.err


@pytest.mark.parametrize("tenant", ["Acme", "a--b", "-x", "x" * 60, "../etc"])
def test_create_user_rejects_invalid_tenant_ids(aws, cli, tenant) -> None:
    result = cli(
        "cognito",
        "create-user",
        "--region",
        "us-east-1",
        "--pool-id",
        "us-east-1_x",
        f"--tenant={tenant}",
        "--email",
        "a@b.test",
    )
    assert result.code == 2 and "invalid tenant id" in result.err


def test_generated_password_meets_the_pool_policy() -> None:
    for _ in range(50):
        pw = generate_password()
        assert len(pw) == 20
        assert any(c.isupper() for c in pw) and any(c.islower() for c in pw)
        assert any(c.isdigit() for c in pw) and any(not c.isalnum() for c in pw)
    assert len({generate_password() for _ in range(20)}) == 20


def test_a_generated_password_can_be_typed_into_the_readmes_sign_in_command_as_it_is() -> None:
    """The README signs in with `aws cognito-idp initiate-auth ... --auth-parameters
    USERNAME=ann@acme.example,PASSWORD=...`: the password goes in unquoted. An interactive bash
    expands `!` (history: "event not found"), and the AWS CLI's shorthand syntax refuses a value
    that starts with `=` (awscli/shorthand.py, ``_FIRST_VALUE``): one password in three
    failed there. Its symbols are ones both take literally, and Cognito counts as special."""
    cognito_specials = set("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ")
    literal = set(string.ascii_letters + string.digits + "#%+-_")  # mid-word in bash, any place in a shorthand value
    for _ in range(2000):
        pw = generate_password()
        assert set(pw) <= literal, pw
        assert set(pw) - set(string.ascii_letters + string.digits) <= cognito_specials


def test_access_denied_on_pool_listing_is_a_clear_error(aws, cli, monkeypatch) -> None:
    from botocore.stub import Stubber

    import scripts.cognito as cognito_module

    real = cognito_module.aws_client

    def denied_client(service: str, region: str):
        client = real(service, region)
        stub = Stubber(client)
        stub.add_client_error(
            "list_user_pools", service_error_code="AccessDeniedException", http_status_code=400
        )
        stub.activate()
        return client

    monkeypatch.setattr(cognito_module, "aws_client", denied_client)
    result = cli(*SETUP)
    assert result.code == 4 and "cognito-idp:ListUserPools" in result.err


def test_create_user_interrupted_before_its_password_was_set_is_resumed(aws, cli, monkeypatch) -> None:
    """A run stopped between AdminCreateUser and AdminSetUserPassword leaves a user whose
    temporary password was never shown (MessageAction SUPPRESS): re-running must set a
    password and show it, not report the user as done and leave nobody able to log in."""
    import scripts.cognito as cognito_module

    cli(*SETUP)
    pool_id = _pool_id()
    real = cognito_module.aws_client

    def interrupted(service: str, region: str):
        client = real(service, region)

        def stop(**_: object) -> None:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a lost connection

        monkeypatch.setattr(client, "admin_set_user_password", stop)
        return client

    argv = ("cognito", "create-user", "--region", "us-east-1", "--tenant", "acme", "--email", "ann@acme.test")
    monkeypatch.setattr(cognito_module, "aws_client", interrupted)
    assert cli(*argv).code == 130  # the CLI's one line for Ctrl-C
    monkeypatch.setattr(cognito_module, "aws_client", real)
    assert _idp().admin_get_user(UserPoolId=pool_id, Username="ann@acme.test")["UserStatus"] == "FORCE_CHANGE_PASSWORD"

    resumed = cli(*argv)
    assert resumed.code == 0, resumed.err
    password = resumed.out.split("store it now): ")[1].split()[0]
    client_id = _idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"][0]["ClientId"]
    tokens = _idp().initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "ann@acme.test", "PASSWORD": password},
    )
    assert "IdToken" in tokens["AuthenticationResult"]
    again = cli(*argv)
    assert again.code == 0 and "UNCHANGED" in again.out and "store it now" not in again.out


def test_create_user_again_with_other_capitals_makes_no_second_user(aws, cli) -> None:
    """An email address names one person whatever its capitals. Cognito pools created through the
    API are case sensitive unless told otherwise (UsernameConfiguration's documented default),
    so `Ann@Acme.test` after `ann@acme.test` would be a second user, with another `sub` and so
    another memory. The pool is created case insensitive, and create-user files the address in
    lower case, which moto (no case handling of its own) shows."""
    cli(*SETUP)
    pool_id = _pool_id()
    pool = _idp().describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert pool.get("UsernameConfiguration") == {"CaseSensitive": False}
    base = ("cognito", "create-user", "--region", "us-east-1", "--tenant", "acme")
    assert cli(*base, "--email", "ann@acme.test").code == 0
    again = cli(*base, "--email", "Ann@Acme.TEST")
    assert again.code == 0 and "UNCHANGED" in again.out, again.out
    assert len(_idp().list_users(UserPoolId=pool_id)["Users"]) == 1


def _lose_the_first_response(monkeypatch: pytest.MonkeyPatch, operation: str) -> list[str]:
    """The CLI's Cognito clients lose the response to the first ``operation`` (a read timeout
    after the service acted); returns the list that records it."""
    from botocore.exceptions import ReadTimeoutError

    import scripts.cognito as cognito_module

    real, timed_out = cognito_module.aws_client, []

    def time_out_once(request, event_name: str, **_) -> None:  # after moto's handler: the service acted
        if event_name.endswith(f".{operation}") and not timed_out:
            timed_out.append(request.url)
            raise ReadTimeoutError(endpoint_url=request.url)

    def losing(service: str, region: str, **kwargs):
        client = real(service, region, **kwargs)
        # on the generic event: handlers of a more specific one run before moto's
        client.meta.events.register("before-send", time_out_once)
        return client

    monkeypatch.setattr(cognito_module, "aws_client", losing)
    return timed_out


@pytest.mark.parametrize("operation", ["CreateUserPool", "CreateUserPoolClient"])
def test_a_create_whose_response_times_out_is_not_resent(aws, cli, monkeypatch, operation: str) -> None:
    """Cognito acts on the create, the response never arrives (a read timeout): botocore used to
    resend it, leaving two pools (or app clients) of the same name, the next run then refusing
    with '2 user pools are named ...'. Now the run fails in one line and the next adopts the one."""
    timed_out = _lose_the_first_response(monkeypatch, operation)
    first = cli(*SETUP)
    assert timed_out and first.code == 1 and "timeout" in first.err.lower() and len(first.err.splitlines()) == 1
    pool_id = _pool_id()  # exactly one pool
    assert cli(*SETUP).code == 0
    assert _pool_id() == pool_id
    assert len(_idp().list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]) == 1


def test_a_user_creation_whose_response_was_lost_and_resent_by_botocore_succeeds(aws, cli, monkeypatch) -> None:
    """Cognito creates the user, the response is lost (a read timeout), botocore resends
    AdminCreateUser and the retry answers UsernameExistsException: the user is the one this run
    created (its tenant, never signed in), so the run goes on to set and print its password
    (on main: 'error: AWS call AdminCreateUser failed (UsernameExistsException)', no password)."""
    cli(*SETUP)
    timed_out = _lose_the_first_response(monkeypatch, "AdminCreateUser")
    argv = ("cognito", "create-user", "--region", "us-east-1", "--tenant", "acme", "--email", "ann@acme.test")
    result = cli(*argv)
    assert timed_out and result.code == 0, result.err
    password = result.out.split("store it now): ")[1].split()[0]
    user = _idp().admin_get_user(UserPoolId=_pool_id(), Username="ann@acme.test")
    assert user["UserStatus"] == "CONFIRMED"
    other = cli("cognito", "create-user", "--region", "us-east-1", "--tenant", "globex", "--email", "ann@acme.test")
    assert other.code == 3 and password not in other.out  # another tenant's user is still refused
