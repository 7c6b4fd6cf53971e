"""``memory.aws.is_region``: a region name of AWS's shape, by botocore's partition data (offline)."""

from __future__ import annotations

import pytest

from memory.aws import is_region


@pytest.mark.parametrize(
    "name", ["us-east-1", "eu-west-3", "ap-southeast-7", "us-gov-west-1", "cn-north-1", "eu-north-9"]
)
def test_a_region_of_a_partition_s_shape_is_a_region_even_one_not_listed_yet(name: str) -> None:
    assert is_region(name)


@pytest.mark.parametrize("name", ["xx-fake-9", "US-EAST-1", "us-east-1 ", "useast1", "", "us-east-1/x", "local"])
def test_a_made_up_name_is_not(name: str) -> None:
    assert not is_region(name)
