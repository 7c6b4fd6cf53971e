"""Token vending machine under load: STS calls for 1,000 concurrent retrievals over 50 tenants
(moto STS), and the cost of a cache hit against a plain dict lookup.

Run: ``python -m bench.bench_tvm [--requests 1000] [--tenants 50] [--threads 64] [--json]``.
The baseline is what a store without a TVM would do: one AssumeRole and one s3vectors client
per request (the TVM row builds its clients too). Wall times are under moto, whose STS answers
in-process; against real STS (tens of ms a call) the gap in STS calls dominates.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._common import emit, parser, summary_ms, time_calls

ROLE = "arn:aws:iam::123456789012:role/memory-tenant"


class CountingSts:
    """Counts AssumeRole calls per tenant on a moto STS client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def assume_role(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls[kwargs["Tags"][0]["Value"]] += 1
        return self._client.assume_role(**kwargs)


def _load(fn: Any, requests: int, tenants: int, threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: fn(f"tenant-{i % tenants}"), range(requests)))
    return time.perf_counter() - started


def main() -> None:
    p = parser("bench.bench_tvm", __doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--tenants", type=int, default=50)
    p.add_argument("--threads", type=int, default=64)
    args = p.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)

    from moto import mock_aws

    from memory.aws import StaticCredentials, make_client
    from memory.stores.tvm import TokenVendingMachine

    with mock_aws():
        make_client("s3vectors", region="us-east-1")  # warm botocore's model caches for both runs
        cached_sts = CountingSts(make_client("sts", region="us-east-1"))
        tvm = TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=lambda: cached_sts)
        tvm_s = _load(lambda t: tvm.client_for(t, "s3vectors"), args.requests, args.tenants, args.threads)

        naive_sts = CountingSts(make_client("sts", region="us-east-1"))

        def uncached(tenant: str) -> Any:
            raw = naive_sts.assume_role(
                RoleArn=ROLE, RoleSessionName=f"bench-{tenant}", DurationSeconds=900,
                Tags=[{"Key": "TenantID", "Value": tenant}],
            )["Credentials"]
            credentials = StaticCredentials(raw["AccessKeyId"], raw["SecretAccessKey"], raw["SessionToken"])
            return make_client("s3vectors", region="us-east-1", credentials=credentials)

        naive_s = _load(uncached, args.requests, args.tenants, args.threads)
        load_rows = [
            {
                "strategy": "TVM (cache + single flight)",
                "requests": args.requests,
                "tenants": args.tenants,
                "sts_calls": sum(cached_sts.calls.values()),
                "max_calls_per_tenant": max(cached_sts.calls.values()),
                "wall_s": tvm_s,
            },
            {
                "strategy": "baseline: AssumeRole + client per request",
                "requests": args.requests,
                "tenants": args.tenants,
                "sts_calls": sum(naive_sts.calls.values()),
                "max_calls_per_tenant": max(naive_sts.calls.values()),
                "wall_s": naive_s,
            },
        ]
        emit("STS calls under concurrent load (moto STS)", load_rows, args.json)

        plain = {f"tenant-{i}": object() for i in range(args.tenants)}
        baseline = summary_ms(time_calls(lambda: plain["tenant-7"], 20000))
        hit_rows = []
        for label, fn in (
            ("tvm.credentials_for (hit)", lambda: tvm.credentials_for("tenant-7")),
            ("tvm.client_for (hit)", lambda: tvm.client_for("tenant-7", "s3vectors")),
        ):
            stats = summary_ms(time_calls(fn, 20000))
            hit_rows.append(
                {
                    "operation": label,
                    "p50_us": stats["p50_ms"] * 1e3,
                    "p99_us": stats["p99_ms"] * 1e3,
                    "dict_p50_us": baseline["p50_ms"] * 1e3,
                    "ratio_p50": stats["p50_ms"] / baseline["p50_ms"],
                }
            )
        emit("Cache-hit cost vs a plain dict lookup", hit_rows, args.json)


if __name__ == "__main__":
    main()
