"""Evaluate IAM requests against real policy documents with ``@cloud-copilot/iam-simulate``.

moto ignores IAM conditions, session tags and policy variables, so what ABAC isolation rests
on is checked here with an IAM policy evaluator instead: a Node.js package pinned in
``tests/iam/package-lock.json`` (installed by ``make test`` with ``npm ci``), driven by
``tests/iam/simulate.mjs`` (JSON in on stdin, JSON out on stdout, one Node process per batch).

A :class:`Case` is one request (principal, action, resource, request context) evaluated against
the identity policies of the principal and, optionally, the resource's policy (e.g. a role's
trust policy), with the decision the test expects. From the package's types and trials
(0.1.173): ``runSimulation`` validates the policies and the resource type of the action (an ARN
of the wrong type is an error such as ``no.resource.types``, not a denial), drops context keys
that do not apply to the action (reported as ``ignoredContextKeys``: treated here as a broken
case), resolves ``${aws:PrincipalTag/...}`` from the request context, and applies IAM's
same-account rule to trust policies (naming the caller's role ARN is enough; naming the
account root also needs an identity policy allowing ``sts:AssumeRole``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

#: Where the package.json, its lock file and the Node driver live.
SIMULATOR_DIR = Path(__file__).resolve().parents[1] / "iam"
_PACKAGE = SIMULATOR_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate"

Expect = Literal["allow", "deny"]
_DECISIONS: dict[str, Expect] = {"Allowed": "allow", "ImplicitlyDenied": "deny", "ExplicitlyDenied": "deny"}


@dataclass(frozen=True)
class Case:
    """One IAM request and the decision expected for it.

    ``identity_policies`` are the policies of the calling principal, ``resource_policy`` the
    policy of the resource (a role's trust policy for ``sts:*`` actions), ``context`` the request
    context keys (e.g. ``aws:PrincipalTag/TenantID``, ``aws:RequestTag/TenantID``,
    ``aws:TagKeys``, ``aws:SourceArn``).
    """

    name: str
    expect: Expect
    principal: str
    action: str
    resource: str
    resource_account: str
    identity_policies: Sequence[Mapping[str, Any]] = ()
    resource_policy: Mapping[str, Any] | None = None
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    def simulation(self) -> dict[str, Any]:
        """The request in the simulator's ``Simulation`` shape."""
        doc: dict[str, Any] = {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": self.resource_account},
                "contextVariables": dict(self.context),
            },
            "identityPolicies": [{"name": f"policy-{i}", "policy": p} for i, p in enumerate(self.identity_policies)],
        }
        if self.resource_policy is not None:
            doc["resourcePolicy"] = self.resource_policy
        return doc


@dataclass(frozen=True)
class Outcome:
    """What the simulator decided for one case (``decision`` None when it could not evaluate)."""

    case: Case
    decision: Expect | None
    raw: str | None
    ignored_context_keys: tuple[str, ...]
    errors: Any

    @property
    def problem(self) -> str | None:
        """Why this outcome does not answer the case (errors, ignored keys), or None."""
        if self.errors:
            return f"simulator error: {json.dumps(self.errors)}"
        if self.ignored_context_keys:
            return f"context keys ignored for this action: {', '.join(self.ignored_context_keys)}"
        return None


class SimulatorMissing(RuntimeError):
    """Node.js is not installed: the simulation cannot run here."""


def node() -> str:
    """The ``node`` executable; SimulatorMissing when Node.js is absent."""
    path = shutil.which("node")
    if path is None:
        raise SimulatorMissing("Node.js (node) is not on PATH: the IAM policy simulation cannot run")
    return path


def ensure_installed() -> None:
    """Install the pinned simulator (``npm ci`` from the lock file) if ``make test`` has not."""
    if _PACKAGE.is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"{_PACKAGE} is missing and npm is not on PATH: run `npm ci --prefix {SIMULATOR_DIR}`")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(SIMULATOR_DIR)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def simulate(cases: Sequence[Case]) -> list[Outcome]:
    """Evaluate every case in one Node process; outcomes in the order of ``cases``."""
    ensure_installed()
    done = subprocess.run(
        [node(), str(SIMULATOR_DIR / "simulate.mjs")],
        input=json.dumps([c.simulation() for c in cases]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=SIMULATOR_DIR,
    )
    results = json.loads(done.stdout)
    if len(results) != len(cases):
        raise RuntimeError(f"the simulator answered {len(results)} results for {len(cases)} cases")
    return [
        Outcome(
            case=case,
            decision=_DECISIONS.get(r["result"]) if r["result"] else None,
            raw=r["result"],
            ignored_context_keys=tuple(r["ignoredContextKeys"]),
            errors=r["errors"],
        )
        for case, r in zip(cases, results)
    ]


def table(outcomes: Sequence[Outcome]) -> str:
    """The outcomes as an aligned text table (case, expected, simulator's decision)."""
    width = max(len(o.case.name) for o in outcomes)
    lines = [f"{'case':<{width}}  expect  simulator", f"{'-' * width}  ------  ---------"]
    for o in outcomes:
        mark = "" if o.decision == o.case.expect and o.problem is None else "   <-- MISMATCH"
        lines.append(f"{o.case.name:<{width}}  {o.case.expect:<6}  {o.raw}{mark}")
    return "\n".join(lines)
