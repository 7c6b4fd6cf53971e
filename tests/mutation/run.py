"""A rerunnable mutation check of the security-relevant code: does the suite notice when it breaks?

Each mutant is one named, hand-written source change (an exact snippet replaced once) in store
filters and scoping, the token verifier and claim checks, the TVM and its role's policy (the
tenant prefix, read-only erasure markers), tenant ids, summary keys, the outbox and its
ordering, the S3 outbox (tenant prefixes and credentials, conditional writes, claim leases, dead
letters), erasure markers and their coverage, retention (expired memories never retrieved),
hybrid ranking's one result per conversation, the context block's escaping, batching, the HTTP
edge (auth gate before the body, body size limit, JSON body check), the streaming error path
and the JWKS file. For each, the script copies the working tree to a scratch directory (once),
applies the mutant there, runs the tests that guard that code and reports the mutant *killed*
(some test failed) or *survived*. The working tree is never modified. Not part of ``make test``
(about 7 minutes on 2 shared cores, more under load)::

    .venv/bin/python -m tests.mutation.run            # every mutant
    .venv/bin/python -m tests.mutation.run delete-batching stream-error-line

Exit status 1 if any mutant survived or no longer applies (its snippet changed: update it).
Left out as equivalent (the behaviour cannot change): dropping the verifier's header ``alg``
pre-check (``jwt.decode`` pins RS256 again, and so does the JWK's own ``alg``) and keying the
TVM's client cache without the tenant (a cached client is reused only with the same access key).
mutmut and cosmic-ray were not used: they mutate every operator of a module and need the whole
suite per mutant, hours on 2 shared cores; a short list of meaningful mutants runs in minutes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(".venv", ".git", ".state", ".pytest_cache", "__pycache__", "*.egg-info", "results")


@dataclass(frozen=True)
class Mutant:
    """``old`` (found exactly once in ``path``) becomes ``new``; ``tests`` should notice."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


# Each mutant's tests run with -x, so the file most likely to fail comes first. pytest collects
# overlapping arguments (a file and its folder) together in path order: keep the paths disjoint.
SCOPING = ("tests/unit/memory/stores", "tests/unit/memory/plugin/test_backends.py", "tests/unit/memory/index")
INDEX = ("tests/unit/memory/index/test_s3vectors_limits.py", "tests/unit/memory/index/test_s3vectors.py",
         "tests/unit/memory/index/test_conformance.py", "tests/unit/memory/index/test_local.py")
AUTH = ("tests/unit/auth",)
APP = ("tests/unit/agent/test_app.py", "tests/unit/agent/test_app_stream.py", "tests/unit/agent/test_app_auth_gate.py")
PIPELINE = ("tests/unit/memory/pipeline", "tests/unit/memory/test_formats.py", "tests/unit/memory/plugin")
ERASURE = ("tests/unit/memory/pipeline/test_outbox_backends.py", "tests/unit/memory/pipeline/test_durability.py",
           "tests/unit/scripts/test_local_operations.py", "tests/unit/scripts/test_forget.py")
OUTBOX_S3 = ("tests/unit/memory/pipeline/test_outbox_backends.py", "tests/unit/memory/pipeline/test_s3_conditional_writes.py",
             "tests/unit/memory/pipeline/test_durability.py")
RETENTION = ("tests/unit/memory/stores", "tests/unit/memory/index", "tests/unit/scripts/test_retention.py")
HYBRID = ("tests/unit/memory/stores/test_hybrid.py", "tests/unit/memory/stores/test_stores.py")
CONTEXT = ("tests/unit/memory/plugin/test_plugin.py", "tests/unit/memory/plugin/test_backends.py",
           "tests/hardening/test_hostile_input.py")
BODY = ("tests/unit/agent/test_body_limit.py", *APP)
TVM_POLICY = ("tests/unit/scripts/test_tvm_role.py", "tests/unit/scripts/test_abac_simulation.py")

MUTANTS = [
    # -- summary keys (persisted format) ----------------------------------------------------
    Mutant("key-format-no-length-prefix", "memory/keys.py",
           'digest.update(len(encoded).to_bytes(8, "big") + encoded)', "digest.update(encoded)",
           ("tests/unit/memory/test_formats.py", "tests/unit/memory/test_embedders_keys.py")),
    Mutant("key-format-part-marker", "memory/keys.py",
           'b"\\x01" + part.encode("utf-8")', 'b"\\x02" + part.encode("utf-8")',
           ("tests/unit/memory/test_formats.py", "tests/unit/memory/test_embedders_keys.py")),
    # -- outbox and its ordering --------------------------------------------------------------
    Mutant("replay-recomputes-key", "memory/pipeline/outbox.py",
           "return dataclasses.replace(entry, stored_key=entry_id)", "return entry",
           ("tests/unit/memory/test_formats.py", "tests/unit/memory/pipeline", "tests/unit/memory/plugin")),
    Mutant("outbox-removed-after-failed-store", "memory/pipeline/background.py",
           "if error is not None:\n                    return self._failed(ref, entry, error)",
           "if False:\n                    return self._failed(ref, entry, error)", PIPELINE),
    Mutant("open-entry-summarized", "memory/pipeline/background.py",
           "if entry is None or (entry.open and not adopted):", "if entry is None:", PIPELINE),
    # -- batching (service limits) ---------------------------------------------------------------
    Mutant("delete-batching", "memory/index/s3vectors.py",
           "for batch in _chunks(wanted, limits.MAX_DELETE_BATCH):", "for batch in [wanted] if wanted else []:", INDEX),
    Mutant("read-batch-size", "memory/index/limits.py", "MAX_GET_BATCH = 100", "MAX_GET_BATCH = 1000", INDEX),
    Mutant("put-batch-size", "memory/index/limits.py", "MAX_PUT_BATCH = 500", "MAX_PUT_BATCH = 501", INDEX),
    # -- store filters and scoping ----------------------------------------------------------------
    Mutant("visibility-any-user", "memory/stores/scoping.py",
           '"$and": [\n            {"user_id": {"$eq": scope.user_id}},',
           '"$and": [\n            {"user_id": {"$exists": True}},', SCOPING),
    Mutant("visibility-other-agents", "memory/stores/scoping.py",
           '{"agent_name": {"$exists": False}},', '{"agent_name": {"$ne": scope.agent_name}},', SCOPING),
    Mutant("ownership-ignores-agent", "memory/stores/scoping.py",
           'return {"user_id": {"$eq": scope.user_id}, "agent_name": {"$eq": scope.agent_name}}',
           'return {"user_id": {"$eq": scope.user_id}}', SCOPING),
    Mutant("tenant-id-unvalidated", "tenant_ids/__init__.py",
           'if not _TENANT_ID.fullmatch(tenant_id) or "--" in tenant_id:', "if False:",
           ("tests/unit/tenant_ids", "tests/unit/memory", "tests/unit/agent/test_payload.py", *AUTH)),
    # -- TVM --------------------------------------------------------------------------------------
    Mutant("tvm-no-session-tag", "memory/stores/tvm.py",
           'Tags=[{"Key": TENANT_TAG_KEY, "Value": tenant_id}],', "Tags=[],", ("tests/unit/memory/stores",)),
    Mutant("tvm-credentials-shared-across-tenants", "memory/stores/tvm.py",
           "cached = self._credentials.get(tenant_id)",
           "cached = next(iter(self._credentials.values()), None)", ("tests/unit/memory/stores",)),
    Mutant("tvm-stale-client-after-refresh", "memory/stores/tvm.py",
           "return entry[0] if entry and entry[1] == access_key else None",
           "return entry[0] if entry else None", ("tests/unit/memory/stores",)),
    # -- verifier and claim checks ------------------------------------------------------------------
    Mutant("verifier-no-issuer", "auth/verifier.py", "issuer=self.issuer,", "", AUTH),
    Mutant("verifier-any-audience", "auth/verifier.py",
           "if matched is None:\n                raise AuthError(\"wrong_audience\")", "if matched is None:\n                matched = \"\"", AUTH),
    Mutant("verifier-any-token-use", "auth/verifier.py",
           "if not isinstance(token_use, str) or token_use not in self.token_uses:", "if not isinstance(token_use, str):", AUTH),
    Mutant("verifier-expiry-ignored", "auth/verifier.py",
           "leeway=self.leeway_seconds,", "leeway=10**9,", AUTH),
    Mutant("verifier-any-user-claim", "auth/verifier.py",
           "if user_claim not in USER_CLAIMS:", "if False:", AUTH),
    Mutant("identity-blank-user", "auth/identity.py", "not self.user_id.strip()", "not self.user_id", AUTH),
    Mutant("claims-other-user-accepted", "agent/app.py",
           "if request.user_id is not None and request.user_id != identity.user_id:", "if False:", APP),
    Mutant("jwks-file-keeps-every-key", "auth/jwks.py",
           'if k.key_id and k.public_key_use in ("sig", None)', "if k.key_id", AUTH),
    # -- streaming error path -------------------------------------------------------------------------
    Mutant("stream-error-line", "agent/app.py", 'emit({**body, "status": status})', "pass", APP),
    # -- erasure markers and their coverage ----------------------------------------------------------
    Mutant("marker-covers-other-tenant", "memory/pipeline/outbox.py",
           "if entry.tenant_id != self.tenant_id:\n            return False", "if False:\n            return False",
           ERASURE),
    Mutant("marker-covers-later-conversations", "memory/pipeline/outbox.py",
           "return entry.started_at <= parse_time(self.erased_at)", "return True", ERASURE),
    Mutant("erasure-keeps-dead-letters", "memory/pipeline/erasure.py",
           "for letter in letters:\n        outbox.purge(", "for letter in ():\n        outbox.purge(",
           ("tests/unit/scripts/test_local_operations.py", *ERASURE[:2], "tests/unit/scripts/test_forget.py")),
    Mutant("erasure-listing-misses-user-folder", "memory/pipeline/outbox_s3.py",
           "if mine in folders or (listed_up_to is not None and mine > listed_up_to):", "if mine in folders:",
           OUTBOX_S3),
    Mutant("erasure-not-rechecked-after-store", "memory/pipeline/background.py",
           "if self._erased_now(entry):\n                    self._unstore(entry)",
           "if False:\n                    self._unstore(entry)", ERASURE),
    # -- S3 outbox: tenant prefixes, credentials, conditional writes, leases, dead letters ------------
    Mutant("s3-outbox-tenant-unvalidated", "memory/pipeline/outbox_s3.py",
           "segment = _NO_TENANT if tenant_id is None else validate_tenant_id(tenant_id)",
           "segment = _NO_TENANT if tenant_id is None else tenant_id", OUTBOX_S3),
    Mutant("s3-outbox-writes-with-app-credentials", "memory/pipeline/outbox_s3.py",
           "self._client_for(tenant_id).put_object(", "self._client_for(None).put_object(", OUTBOX_S3),
    Mutant("s3-claim-unconditional", "memory/pipeline/outbox_s3.py",
           'etag, current = self._put_lease(tenant_id, key, lease, IfNoneMatch="*")',
           "etag, current = self._put_lease(tenant_id, key, lease)", OUTBOX_S3),
    Mutant("s3-release-unconditional", "memory/pipeline/outbox_s3.py",
           'self._conditional_delete(claim.tenant_id, self._key(claim.tenant_id, "claims", claim.entry_id), claim.token)',
           'self._delete(claim.tenant_id, self._key(claim.tenant_id, "claims", claim.entry_id))', OUTBOX_S3),
    Mutant("s3-swap-unconditional", "memory/pipeline/outbox_s3.py",
           "return self._conditional_put(tenant_id, key, body, IfMatch=found[1]) is not None",
           "return self._conditional_put(tenant_id, key, body) is not None", OUTBOX_S3),
    Mutant("dead-letter-drops-newer-version", "memory/pipeline/outbox.py",
           "if outbox.swap(entry, None) or outbox.get(entry.entry_id, entry.tenant_id) is None:",
           "if outbox.remove(entry.entry_id, entry.tenant_id) or True:",
           ("tests/unit/memory/pipeline/test_durability.py", "tests/unit/memory/pipeline/test_outbox_backends.py")),
    # -- retention: expired memories are never injected or recalled -----------------------------------
    Mutant("retention-filter-inverted", "memory/stores/scoping.py",
           '{"$lt" if expired else "$gte": cutoff}', '{"$gte" if expired else "$lt": cutoff}', RETENTION),
    Mutant("retention-undated-recalled", "memory/stores/single_tenant.py",
           "hits = [hit for hit in hits if not is_expired(hit.metadata, cutoff)]", "hits = list(hits)", RETENTION),
    Mutant("retention-off-in-multi-tenant", "memory/stores/multi_tenant.py",
           "ttl_seconds=self.ttl_seconds,", "ttl_seconds=None,", RETENTION),
    # -- hybrid ranking: one result per conversation --------------------------------------------------
    Mutant("hybrid-two-per-conversation", "memory/stores/hybrid.py",
           "if group in seen:\n            continue", "if False:\n            continue", HYBRID),
    # -- the context block's fencing and escaping -----------------------------------------------------
    Mutant("memory-content-unescaped", "memory/plugin/context_block.py",
           'f">{escape_text(memory.content)}</memory>"', 'f">{memory.content}</memory>"', CONTEXT),
    Mutant("memory-id-unescaped", "memory/plugin/context_block.py",
           '<memory id="{escape_text(memory.id)}"', '<memory id="{memory.id}"', CONTEXT),
    Mutant("memory-look-alikes-unescaped", "memory/plugin/context_block.py",
           'return _LOOK_ALIKE.sub(lambda m: f"&#x{ord(m.group()):x};", html.escape(text, quote=True))',
           "return html.escape(text, quote=True)",
           ("tests/unit/memory/plugin/test_context_block_properties.py", "tests/unit/memory/test_strands_store.py")),
    # -- the HTTP edge: auth gate first, body size limit, JSON body check -----------------------------
    Mutant("auth-gate-after-body-limit", "agent/app.py",
           "Middleware(AuthGateMiddleware, authenticate=authenticate, on_error=_error),\n"
           "            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_error=_error),",
           "Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_error=_error),\n"
           "            Middleware(AuthGateMiddleware, authenticate=authenticate, on_error=_error),", APP),
    Mutant("body-limit-off-by-one", "agent/body_limit.py",
           "declared is not None and declared > self.max_bytes", "declared is not None and declared >= self.max_bytes",
           BODY),
    Mutant("body-limit-chunked-unchecked", "agent/body_limit.py",
           "if received > self.max_bytes:\n                    raise _TooLarge",
           "if False:\n                    raise _TooLarge", BODY),
    Mutant("json-body-recursion-unchecked", "agent/json_body.py",
           "except (ValueError, RecursionError) as exc:", "except ValueError as exc:", APP),
    # -- the TVM role's policy: the tenant prefix condition ------------------------------------------
    Mutant("tvm-policy-outbox-any-tenant", "scripts/tvm_role.py",
           "root = f\"arn:aws:s3:::{bucket}/{prefix.strip('/')}/{tenant}\"",
           "root = f\"arn:aws:s3:::{bucket}/{prefix.strip('/')}/*\"", TVM_POLICY),
    Mutant("tvm-policy-erasure-markers-writable", "scripts/tvm_role.py",
           '"Action": "s3:GetObject", "Resource": f"{root}/{ERASURES_FOLDER}/*"',
           '"Action": list(OUTBOX_OBJECT_ACTIONS), "Resource": f"{root}/{ERASURES_FOLDER}/*"', TVM_POLICY),
    Mutant("tvm-policy-outbox-list-any-prefix", "scripts/tvm_role.py",
           '"Condition": {"StringLike": {"s3:prefix": tenant_outbox_prefix_pattern(outbox_prefix)}},', "",
           TVM_POLICY),
]


def _apply(root: Path, mutant: Mutant) -> str:
    """Write the mutant into ``root``; returns the original text (or raises if it no longer applies)."""
    target = root / mutant.path
    text = target.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        raise LookupError(f"{mutant.name}: snippet found {text.count(mutant.old)} times in {mutant.path}")
    target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return text


def _run(root: Path, mutant: Mutant, timeout: float) -> tuple[str, float]:
    original = _apply(root, mutant)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
            cwd=root, capture_output=True, text=True, timeout=timeout,
        )
        verdict = "survived" if result.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        verdict = "killed (timeout)"
    finally:
        (root / mutant.path).write_text(original, encoding="utf-8")
    return verdict, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        root = Path(scratch) / "repo"
        shutil.copytree(REPO, root, ignore=IGNORED)
        print(f"{'mutant':<36} {'module':<30} {'verdict':<17} seconds")  # noqa: T201 - CLI
        for mutant in chosen:
            try:
                verdict, seconds = _run(root, mutant, args.timeout)
            except LookupError as exc:
                verdict, seconds = f"stale ({exc})", 0.0
            failures += not verdict.startswith("killed")
            print(f"{mutant.name:<36} {mutant.path:<30} {verdict:<17} {seconds:6.1f}", flush=True)  # noqa: T201
    killed = len(chosen) - failures
    print(f"\n{killed}/{len(chosen)} killed")  # noqa: T201 - CLI
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
