"""agentcore: exact execution-role policy, the settings file, idempotence, printed toolkit commands."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from scripts.agentcore_cmd import execution_role_policy, model_resources
from tests.support.scripts_cli import outputs

ACCOUNT = "123456789012"
EXEC = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"
TVM = f"arn:aws:iam::{ACCOUNT}:role/agent-memory-tvm"
@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Where the settings file goes (the toolkit config sits next to it)."""
    return tmp_path / "agentcore.env"


@dataclass
class Deployed:
    """What the command's flags name, created under moto (the command checks that each exists)."""

    pool_id: str
    client_id: str


@pytest.fixture
def role(aws) -> Deployed:
    """The execution and TVM roles, the user pool and its client, the vector and outbox buckets."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "bedrock-agentcore.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam = boto3.client("iam", region_name="us-east-1")
    for name in ("agentcore-runtime", "agent-memory-tvm"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = idp.create_user_pool(PoolName="agent-memory-users")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="app")["UserPoolClient"]["ClientId"]
    boto3.client("s3vectors", region_name="us-east-1").create_vector_bucket(vectorBucketName="mem-bucket")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="mem-outbox")
    return Deployed(pool_id, client_id)


def _args(role: Deployed, config: Path, *extra: str, outbox: str | None = "mem-outbox") -> tuple[str, ...]:
    return (
        "agentcore",
        "--region",
        "us-east-1",
        "--settings-file",
        str(config),
        "--toolkit-config",
        str(config.parent / ".bedrock_agentcore.yaml"),
        "--pool-id",
        role.pool_id,
        "--client-id",
        role.client_id,
        "--execution-role-arn",
        EXEC,
        "--bucket",
        "mem-bucket",
        *(() if outbox is None else ("--outbox-bucket", outbox)),
        *extra,
    )


def test_model_resources_cover_foundation_models_and_inference_profiles() -> None:
    assert model_resources("us-east-1", ACCOUNT, "amazon.nova-2-multimodal-embeddings-v1:0") == [
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-multimodal-embeddings-v1:0"
    ]
    assert model_resources("us-east-1", ACCOUNT, "us.anthropic.claude-sonnet-4-20250514-v1:0") == [
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
    ]


def test_multi_tenant_policy_is_exactly_bedrock_plus_tvm() -> None:
    policy = execution_role_policy(
        region="us-east-1",
        account=ACCOUNT,
        model_ids=["amazon.titan-x"],
        tvm_role_arn=TVM,
        bucket="mem-bucket",
        single_tenant_id=None,
    )
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeChosenModels",
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-x"],
            },
            {
                "Sid": "AssumeTenantRoleWithTag",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": TVM,
            },
        ],
    }


def test_single_tenant_policy_grants_only_that_index() -> None:
    policy = execution_role_policy(
        region="us-east-1",
        account=ACCOUNT,
        model_ids=["m"],
        tvm_role_arn=None,
        bucket="mem-bucket",
        single_tenant_id="acme",
    )
    assert policy["Statement"][1] == {
        "Sid": "SingleTenantIndex",
        "Effect": "Allow",
        "Action": [
            "s3vectors:PutVectors",
            "s3vectors:QueryVectors",
            "s3vectors:GetVectors",
            "s3vectors:ListVectors",
            "s3vectors:DeleteVectors",
            "s3vectors:GetIndex",
        ],
        "Resource": f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/mem-bucket/index/memory-acme",
    }
    assert len(policy["Statement"]) == 2


def _settings(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#"))


def test_writes_settings_grants_role_prints_commands_then_is_idempotent(role, cli, config) -> None:
    first = cli(*_args(role, config, "--tvm-role-arn", TVM))
    assert first.code == 0, first.err
    settings = _settings(config)
    assert settings["AGENT_AUTH_MODE"] == "cognito" and settings["AGENT_TVM_ROLE_ARN"] == TVM
    assert settings["AGENT_COGNITO_CLIENT_IDS"] == role.client_id and settings["AGENT_TOKEN_USES"] == "id"
    assert settings["AGENT_EMBEDDER"] == "bedrock" and "AGENT_STATE_DIR" not in settings  # container default

    iam = boto3.client("iam", region_name="us-east-1")
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    assert {s["Sid"] for s in doc["Statement"]} == {"InvokeChosenModels", "AssumeTenantRoleWithTag", "ListOutbox"}

    steps = outputs(first.out)
    configure, launch = steps["next step 1"], steps["next step 2"]
    argv = shlex.split(configure)
    assert argv[:3] == ["agentcore", "configure", "--non-interactive"] and "--disable-memory" in argv
    flags = {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--") and not b.startswith("--")}
    assert flags["--deployment-type"] == "container" and flags["--requirements-file"] == "requirements.txt"
    assert flags["--entrypoint"] == "agent/app.py" and flags["--request-header-allowlist"] == "Authorization"
    assert json.loads(flags["--authorizer-config"]) == {
        "customJWTAuthorizer": {
            "discoveryUrl": f"https://cognito-idp.us-east-1.amazonaws.com/{role.pool_id}/.well-known/openid-configuration",
            "allowedAudience": [role.client_id],
        }
    }
    assert flags["--idle-timeout"] == "900" and flags["--max-lifetime"] == "28800"
    assert launch == "agentcore launch --agent agent_memory"  # no --env: settings travel in the file

    before = config.read_text()
    second = cli(*_args(role, config, "--tvm-role-arn", TVM))
    assert second.code == 0 and "Nothing to change" in second.out
    assert config.read_text() == before


def test_access_tokens_switch_both_checks_to_client_id(role, cli, config) -> None:
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--token-use", "access"))
    assert result.code == 0, result.err
    authorizer = json.loads(shlex.split(result.out.split("--authorizer-config", 1)[1])[0])
    assert authorizer["customJWTAuthorizer"]["allowedClients"] == [role.client_id]
    assert "allowedAudience" not in authorizer["customJWTAuthorizer"]
    settings = _settings(config)
    assert settings["AGENT_TOKEN_USES"] == "access" and settings["AGENT_TENANT_CLAIMS"] == "tenantId"


def test_short_runtime_idle_timeout_shortens_the_app_timer_or_is_refused(role, cli, config) -> None:
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--idle-timeout", "300"))
    assert result.code == 0, result.err
    settings = _settings(config)
    assert settings["AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS"] == "300"
    assert settings["AGENT_IDLE_TIMEOUT_SECONDS"] == "225"  # 300 - 15 s reaper tick - 60 s margin
    assert "--idle-timeout 300" in result.out
    refused = cli(*_args(role, config, "--tvm-role-arn", TVM, "--idle-timeout", "90"))
    assert refused.code == 2 and "at least 105" in refused.err


def test_dry_run_changes_neither_file_nor_role(role, cli, config) -> None:
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--dry-run"))
    assert result.code == 0 and "WOULD CREATE" in result.out
    assert not config.exists()
    assert (
        boto3.client("iam", region_name="us-east-1").list_role_policies(RoleName="agentcore-runtime")[
            "PolicyNames"
        ]
        == []
    )


def test_multi_tenant_without_tvm_role_is_refused(role, cli, config) -> None:
    result = cli(*_args(role, config))
    assert result.code == 2 and "--tvm-role-arn" in result.err


def test_single_tenant_mode_validates_the_tenant(role, cli, config) -> None:
    bad = cli(*_args(role, config, "--tenant-mode", "single", "--single-tenant-id", "Bad_Tenant"))
    assert bad.code == 2
    good = cli(*_args(role, config, "--tenant-mode", "single", "--single-tenant-id", "acme"))
    assert good.code == 0 and _settings(config)["AGENT_SINGLE_TENANT_ID"] == "acme"


def test_a_direct_code_deploy_config_is_refused_with_the_fix(role, cli, config) -> None:
    existing = {"agents": {"agent_memory": {"deployment_type": "direct_code_deploy"}}}
    (config.parent / ".bedrock_agentcore.yaml").write_text(yaml.safe_dump(existing))
    result = cli(*_args(role, config, "--tvm-role-arn", TVM))
    assert result.code == 1 and "agentcore destroy --agent agent_memory" in result.err
    assert not config.exists()


KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_an_outbox_kms_key_reaches_the_settings_and_the_role_that_writes_the_outbox(role, cli, config) -> None:
    """Single-tenant: the app's own role writes the outbox, so it gets the key (through S3 only);
    multi-tenant: tenant sessions write it, so the key goes to the TVM role (``tvm-role``), not here."""
    outbox = ("--outbox-bucket", "mem-outbox", "--outbox-kms-key-arn", KEY)
    single = cli(*_args(role, config, "--tenant-mode", "single", "--single-tenant-id", "acme", *outbox))
    assert single.code == 0, single.err
    assert _settings(config)["AGENT_OUTBOX_KMS_KEY_ID"] == KEY
    iam = boto3.client("iam", region_name="us-east-1")
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    (kms,) = [s for s in doc["Statement"] if s["Sid"] == "OutboxKmsKeyThroughS3Only"]
    assert kms["Resource"] == KEY and kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    multi = cli(*_args(role, config, "--tvm-role-arn", TVM, *outbox))
    assert multi.code == 0, multi.err
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    assert not any(s["Sid"].startswith("OutboxKms") for s in doc["Statement"])


@pytest.mark.parametrize("mode", [("--tenant-mode", "single", "--single-tenant-id", "acme"), ("--tvm-role-arn", TVM)])
@pytest.mark.parametrize("key", ["alias/outbox", "1234abcd-12ab-34cd-56ef-1234567890ab", KEY.replace("us-east-1", "eu-west-1")])
def test_an_outbox_key_that_is_not_a_key_arn_here_is_refused_before_anything_is_written(
    role, cli, config, mode, key
) -> None:
    """IAM matches a KMS key by its ARN only: ``tvm-role`` refuses an alias, a key id or a key of
    another region, and so must this command, in either mode (single: the role's statement;
    multi: the settings doctor checks the TVM role against), before agentcore.env is written, not
    after it (an app deployed with a key its role may not use)."""
    result = cli(*_args(role, config, *mode, "--outbox-kms-key-arn", key))
    assert result.code == 2 and "--outbox-kms-key-arn must be a key ARN" in result.err, result.err
    assert not config.exists()
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.list_role_policies(RoleName="agentcore-runtime")["PolicyNames"] == []


@pytest.mark.parametrize("prefix", ["outbox/", "/outbox", "tenants/outbox", "-outbox"])
def test_an_outbox_prefix_the_app_refuses_is_refused_before_anything_is_written(
    role, cli, config, capsys, prefix
) -> None:
    """AGENT_OUTBOX_PREFIX is one path segment (``agent.settings``): the deployed app refuses to
    start with ``outbox/``. The command must refuse it too (a usage error, exit 2), not write it
    to agentcore.env and grant a role for keys the app never writes."""
    with pytest.raises(SystemExit) as stopped:
        cli(*_args(role, config, "--tvm-role-arn", TVM, "--outbox-bucket", "mem-outbox", f"--outbox-prefix={prefix}"))
    assert stopped.value.code == 2 and "--outbox-prefix" in capsys.readouterr().err
    assert not config.exists()
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.list_role_policies(RoleName="agentcore-runtime")["PolicyNames"] == []


def test_the_settings_file_is_one_the_app_accepts(role, cli, config, monkeypatch) -> None:
    """What the command writes, the deployed app parses (with the outbox prefix it was given)."""
    from agent.settings import SETTINGS_FILE_ENV, load_settings

    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--outbox-bucket", "mem-outbox", "--outbox-prefix", "ob-1"))
    assert result.code == 0, result.err
    monkeypatch.setenv(SETTINGS_FILE_ENV, str(config))
    settings = load_settings()
    assert (settings.outbox_bucket, settings.outbox_prefix) == ("mem-outbox", "ob-1")


def test_an_embedding_model_the_app_does_not_use_is_refused(role, cli, config) -> None:
    """The deployed app always embeds with Nova 2 (``memory.embedders.bedrock``; no setting
    selects another model): granting another model instead leaves every embedding call denied."""
    from memory.embedders.bedrock import NOVA_MODEL_ID

    other = cli(*_args(role, config, "--tvm-role-arn", TVM, "--embedding-model-id", "amazon.titan-embed-text-v2:0"))
    assert other.code == 2 and NOVA_MODEL_ID in other.err, other.out
    assert not config.exists()
    profile = cli(*_args(role, config, "--tvm-role-arn", TVM, "--embedding-model-id", f"us.{NOVA_MODEL_ID}"))
    assert profile.code == 0, profile.err
    doc = boto3.client("iam", region_name="us-east-1").get_role_policy(
        RoleName="agentcore-runtime", PolicyName="agent-memory-app"
    )["PolicyDocument"]
    assert f"arn:aws:bedrock:*::foundation-model/{NOVA_MODEL_ID}" in doc["Statement"][0]["Resource"]


def test_without_an_outbox_bucket_nothing_is_written_that_the_app_would_refuse(role, cli, config, monkeypatch) -> None:
    """The deployed app (AGENT_BACKEND=s3vectors) keeps its outbox in S3 and refuses to start
    without AGENT_OUTBOX_BUCKET: a settings file without it must not be written as if the
    deployment were ready."""
    from agent.settings import SETTINGS_FILE_ENV, load_settings

    result = cli(*_args(role, config, "--tvm-role-arn", TVM, outbox=None))
    if result.code == 0:
        monkeypatch.setenv(SETTINGS_FILE_ENV, str(config))
        load_settings()  # what was written, the app must accept
    else:
        assert result.code == 2 and "--outbox-bucket" in result.err and not config.exists()


def test_unusable_files_are_clear_errors_not_tracebacks(role, cli, config) -> None:
    """A settings file in a folder that does not exist, or a hand-edited toolkit config that is
    not YAML: one line naming the file, exit 1."""
    missing = config.parent / "no" / "such" / "agentcore.env"
    result = cli(*_args(role, missing, "--tvm-role-arn", TVM))
    assert result.code == 1 and str(missing) in result.err
    (config.parent / ".bedrock_agentcore.yaml").write_text("agents: [unclosed\n")
    result = cli(*_args(role, config, "--tvm-role-arn", TVM))
    assert result.code == 1 and ".bedrock_agentcore.yaml" in result.err


def test_a_rerun_keeps_the_settings_the_operator_added_to_the_file(role, cli, config, monkeypatch) -> None:
    """agentcore.env is how the deployed app gets its settings (launch sends no environment), so
    a setting the command has no flag for, such as AGENT_MEMORY_TTL_DAYS (retention), is added to
    it by hand. Re-running the command (a new idle timeout, another client id) rewrote the file
    without it: retention silently off at the next launch. It keeps such lines, and the file stays
    one the app accepts; the settings it writes are still its own."""
    from agent.settings import SETTINGS_FILE_ENV, load_settings
    from scripts.agentcore_cmd import WRITTEN_SETTINGS

    assert cli(*_args(role, config, "--tvm-role-arn", TVM)).code == 0
    config.write_text(config.read_text().replace("AGENT_MODEL_ID=", "AGENT_MODEL_ID=hand-edited-") + "AGENT_MEMORY_TTL_DAYS=30\n")
    again = cli(*_args(role, config, "--tvm-role-arn", TVM, "--idle-timeout", "600"))
    assert again.code == 0, again.err
    settings = _settings(config)
    assert settings["AGENT_MEMORY_TTL_DAYS"] == "30" and settings["AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS"] == "600"
    assert not settings["AGENT_MODEL_ID"].startswith("hand-edited")  # the command's own setting
    before = config.read_text()
    assert "Nothing to change" in cli(*_args(role, config, "--tvm-role-arn", TVM, "--idle-timeout", "600")).out
    assert config.read_text() == before
    monkeypatch.setenv(SETTINGS_FILE_ENV, str(config))
    assert load_settings().memory_ttl_days == 30
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert cli(*_args(role, config, "--tvm-role-arn", TVM, "--outbox-kms-key-arn", key)).code == 0
    assert set(_settings(config)) - WRITTEN_SETTINGS == {"AGENT_MEMORY_TTL_DAYS"}  # it knows what it writes
    single = cli(*_args(role, config, "--tenant-mode", "single", "--single-tenant-id", "acme"))
    assert single.code == 0, single.err
    settings = _settings(config)  # what the command wrote before and no longer writes is gone
    assert "AGENT_OUTBOX_KMS_KEY_ID" not in settings and "AGENT_TVM_ROLE_ARN" not in settings
    assert settings["AGENT_MEMORY_TTL_DAYS"] == "30"
    assert set(settings) - WRITTEN_SETTINGS == {"AGENT_MEMORY_TTL_DAYS"}


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("AGENT_MEMORY_TTL_DAY=30", "unknown setting AGENT_MEMORY_TTL_DAY"),  # a typo
        ("AGENT_SUMMARY_MAX_BUSY_SECONDS=900", "AGENT_SUMMARY_MAX_BUSY_SECONDS"),  # a value it refuses
        ("AGENT_MODEL_API_KEY=sk-live-123", "AGENT_MODEL_API_KEY is a secret"),
    ],
)
def test_a_hand_added_line_the_deployed_app_would_refuse_is_refused_before_anything_is_written(
    role, cli, config, monkeypatch, line: str, said: str
) -> None:
    """Operators add settings without a flag to agentcore.env by hand (the docs' example:
    AGENT_MEMORY_TTL_DAYS), and a rerun keeps them. One the deployed app refuses (the runtime
    reads the file strictly) meant a launch whose app never starts, the reason only in the
    runtime's logs: the command must refuse it, name it, and write nothing, whatever the
    operator's own shell exports."""
    assert cli(*_args(role, config, "--tvm-role-arn", TVM)).code == 0
    config.write_text(config.read_text() + line + "\n")
    before = config.read_text()
    monkeypatch.setenv("AGENT_MODEL_API_KEY", "from-the-shell")  # the shell is not the runtime
    monkeypatch.setenv("AGENT_SUMMARY_MAX_BUSY_SECONDS", "60")
    again = cli(*_args(role, config, "--tvm-role-arn", TVM, "--idle-timeout", "600"))
    assert again.code == 1, again.out
    assert said in again.err and "nothing written" in again.err and "sk-live-123" not in again.err
    assert config.read_text() == before


TYPOS = {
    "--pool-id": "us-east-1_Typo0",
    "--client-id": "typo0client",
    "--bucket": "mem-bucket-typo",
    "--outbox-bucket": "mem-outbox-typo",
    "--tvm-role-arn": f"arn:aws:iam::{ACCOUNT}:role/agent-memory-tvn",
    "--execution-role-arn": f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtim",
}


@pytest.mark.parametrize("flag", sorted(TYPOS))
def test_a_name_that_does_not_exist_is_refused_naming_the_flag_and_nothing_is_written(
    role, cli, config, flag
) -> None:
    """The settings file and the role's policy carry these names; a typo deployed an app that
    failed on every request. Each is looked up first (Cognito, S3 Vectors, S3, IAM): one that
    does not exist fails the run, naming the flag and the value, before anything is written."""
    argv = list(_args(role, config, "--tvm-role-arn", TVM))
    argv[argv.index(flag) + 1] = TYPOS[flag]
    result = cli(*argv)
    assert result.code == 1 and f"{flag} {TYPOS[flag]}" in result.err, result.err
    assert result.err.count("\n  ") == 1  # only that flag is named
    assert not config.exists()
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.list_role_policies(RoleName="agentcore-runtime")["PolicyNames"] == []


def test_a_client_of_another_pool_a_malformed_pool_id_and_a_role_of_another_account_are_refused(
    role, cli, config
) -> None:
    """A second --client-id that belongs to another pool, a pool id the API would refuse as
    malformed (checked against the API model's pattern), a role ARN whose name exists but in
    another account: each named, all in one run."""
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    other_pool = idp.create_user_pool(PoolName="other")["UserPool"]["Id"]
    other = idp.create_user_pool_client(UserPoolId=other_pool, ClientName="x")["UserPoolClient"]["ClientId"]
    foreign = TVM.replace(ACCOUNT, "210987654321")
    result = cli(*_args(role, config, "--client-id", other, "--tvm-role-arn", foreign))
    assert result.code == 1 and f"--client-id {other}:" in result.err and f"--tvm-role-arn {foreign}:" in result.err
    assert f"--client-id {role.client_id}" not in result.err and TVM in result.err  # the one that exists is named
    assert not config.exists()
    malformed = cli(*_args(role, config, "--tvm-role-arn", TVM, "--pool-id", "no pool"))
    assert malformed.code == 1 and "--pool-id no pool:" in malformed.err and not config.exists()



SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:agent-memory/app-AbCdEf"


def test_the_app_secret_adds_exactly_get_secret_value_and_with_a_customer_key_its_decrypt() -> None:
    from scripts.app_secret import AppSecret

    def policy(secret: AppSecret | None) -> dict:
        return execution_role_policy(
            region="us-east-1", account=ACCOUNT, model_ids=["m"], tvm_role_arn=TVM, bucket="b",
            single_tenant_id=None, secret=secret,
        )  # fmt: skip

    without = policy(None)
    managed = policy(AppSecret(SECRET_ARN))
    assert managed["Statement"][:-1] == without["Statement"]
    assert managed["Statement"][-1] == {
        "Sid": "ReadAppSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": SECRET_ARN,
    }
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    customer = policy(AppSecret(SECRET_ARN, key))
    assert customer["Statement"][:-1] == managed["Statement"]
    assert customer["Statement"][-1] == {
        "Sid": "DecryptAppSecretThroughSecretsManagerOnly",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key,
        "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}},
    }


def test_a_secrets_id_is_written_as_its_arn_and_the_role_may_read_exactly_that_secret(role, cli, config) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="agent-memory/app", SecretString='{"AGENT_LOG_HASH_KEY": "k"}')["ARN"]
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--secrets-id", "agent-memory/app"))
    assert result.code == 0, result.err
    assert _settings(config)["AGENT_SECRETS_ID"] == arn
    iam = boto3.client("iam", region_name="us-east-1")
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    (read,) = [s for s in doc["Statement"] if s["Sid"] == "ReadAppSecret"]
    assert read["Resource"] == arn and read["Action"] == "secretsmanager:GetSecretValue"
    assert not any(s["Sid"].startswith("DecryptAppSecret") for s in doc["Statement"])  # aws/secretsmanager

    again = cli(*_args(role, config, "--tvm-role-arn", TVM))  # without the flag the secret is gone,
    assert again.code == 0, again.err
    assert "AGENT_SECRETS_ID" not in _settings(config)
    # and the report says so (the next launch's app starts without its secrets): not silently
    (removed,) = [line for line in again.out.splitlines() if "AGENT_SECRETS_ID" in line]
    assert "DELETED" in removed and "pass it to keep it" in removed
    assert "AGENT_SECRETS_ID" not in cli(*_args(role, config, "--tvm-role-arn", TVM)).out  # once
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    assert not any(s["Sid"] == "ReadAppSecret" for s in doc["Statement"])


def test_a_secret_with_a_customer_key_gets_decrypt_on_that_key_by_its_arn(role, cli, config) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/agent-secrets", TargetKeyId=key["KeyId"])
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="agent-memory/app", SecretString="{}", KmsKeyId="alias/agent-secrets")["ARN"]
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--secrets-id", arn))
    assert result.code == 0, result.err
    iam = boto3.client("iam", region_name="us-east-1")
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    (decrypt,) = [s for s in doc["Statement"] if s["Sid"] == "DecryptAppSecretThroughSecretsManagerOnly"]
    assert decrypt["Resource"] == key["Arn"]  # the alias resolved: IAM matches key ARNs only
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_a_secrets_id_that_names_no_secret_is_refused_and_nothing_is_written(role, cli, config) -> None:
    result = cli(*_args(role, config, "--tvm-role-arn", TVM, "--secrets-id", "agent-memory/typo"))
    assert result.code == 1 and "--secrets-id agent-memory/typo: no Secrets Manager secret" in result.err
    assert not config.exists()


def test_a_secret_the_app_could_not_read_is_refused_naming_the_command_that_mends_it(role, cli, config) -> None:
    """DescribeSecret finds a secret scheduled for deletion (with its DeletedDate) and one created
    without a value (no AWSCURRENT version), but GetSecretValue refuses both: the app deployed
    with either would not start. Nothing is written, and the command that mends it is named."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="agent-memory/old", SecretString='{"AGENT_LOG_HASH_KEY": "k"}')["ARN"]
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    deleted = cli(*_args(role, config, "--tvm-role-arn", TVM, "--secrets-id", "agent-memory/old"))
    assert deleted.code == 1 and "--secrets-id agent-memory/old: scheduled for deletion on" in deleted.err
    assert f"aws secretsmanager restore-secret --secret-id {arn}" in deleted.err and not config.exists()
    empty = sm.create_secret(Name="agent-memory/empty")["ARN"]
    valueless = cli(*_args(role, config, "--tvm-role-arn", TVM, "--secrets-id", "agent-memory/empty"))
    assert valueless.code == 1 and "--secrets-id agent-memory/empty: it has no value" in valueless.err
    assert f"aws secretsmanager put-secret-value --secret-id {empty}" in valueless.err and not config.exists()
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.list_role_policies(RoleName="agentcore-runtime")["PolicyNames"] == []
