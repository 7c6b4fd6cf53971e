"""tenant_ids: the one tenant-id rule, and that the longest valid id still makes a valid index name."""

from __future__ import annotations

import pytest

from memory.tenants import INDEX_PREFIX, index_name_for
from tenant_ids import MAX_TENANT_ID_LENGTH, tenant_id_problem


@pytest.mark.parametrize("tenant", ["a", "tenant-001", "0acme9", "a-b-c", "a" * MAX_TENANT_ID_LENGTH])
def test_valid_ids_have_no_problem(tenant: str) -> None:
    assert tenant_id_problem(tenant) is None


@pytest.mark.parametrize(
    ("tenant", "problem"),
    [
        (5, "tenant id must be a string"),
        ("", "tenant id must be 1-56 characters"),
        ("a" * (MAX_TENANT_ID_LENGTH + 1), "tenant id must be 1-56 characters"),
        *((bad, "tenant id may contain only lowercase letters, digits and single inner hyphens")
          for bad in ("Acme", "acme--x", "acme_x", "../acme", "-acme", "acme-", "acme ", "acmé")),
    ],
)
def test_invalid_ids_are_named_without_quoting_them(tenant: object, problem: str) -> None:
    assert tenant_id_problem(tenant) == problem


def test_the_longest_id_makes_an_index_name_s3_vectors_accepts() -> None:
    name = index_name_for("a" * MAX_TENANT_ID_LENGTH)
    assert name.startswith(INDEX_PREFIX) and len(name) == 63  # S3 Vectors: 3-63 characters
