"""The mutation check stays runnable: every mutant still names code that exists, exactly once.

The check itself (``python -m tests.mutation.run``) takes minutes and is not part of ``make
test``; this keeps a refactoring from silently turning a mutant stale (its snippet gone), which
the check would only report when somebody next runs it.
"""

from __future__ import annotations

import pytest

from tests.mutation.run import MUTANTS, REPO, Mutant


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_the_mutant_applies_once_and_its_tests_exist(mutant: Mutant) -> None:
    source = (REPO / mutant.path).read_text(encoding="utf-8")
    assert source.count(mutant.old) == 1, f"update the snippet of {mutant.name}"
    assert mutant.old != mutant.new
    assert all((REPO / path).exists() for path in mutant.tests)


def test_mutant_names_are_unique() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
