"""``memory.aws``'s offline checks of AWS names: a region of AWS's shape (botocore's partition
data), an S3 general purpose bucket name (S3's naming rules)."""

from __future__ import annotations

import pytest

from memory.aws import is_region, s3_bucket_name_problem


@pytest.mark.parametrize(
    "name", ["us-east-1", "eu-west-3", "ap-southeast-7", "us-gov-west-1", "cn-north-1", "eu-north-9"]
)
def test_a_region_of_a_partition_s_shape_is_a_region_even_one_not_listed_yet(name: str) -> None:
    assert is_region(name)


@pytest.mark.parametrize("name", ["xx-fake-9", "US-EAST-1", "us-east-1 ", "useast1", "", "us-east-1/x", "local"])
def test_a_made_up_name_is_not(name: str) -> None:
    assert not is_region(name)


@pytest.mark.parametrize(
    "name", ["mem-outbox", "abc", "a" * 63, "mem.outbox.eu", "x1-s3aliases", "mem-xn--outbox", "1.2.3.4.5"]
)
def test_a_name_s3_s_naming_rules_accept_is_an_s3_bucket_name(name: str) -> None:
    assert s3_bucket_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Mem_Bucket", "lower-case"), ("ab", "3-63"), ("a" * 64, "3-63"), ("-mem", "both ends"),
        ("mem.", "both ends"), ("s3://mem-outbox", "lower-case"), ("mem..outbox", "adjacent dots"),
        ("192.168.5.4", "IP address"), ("xn--mem", "prefix"), ("sthree-mem", "prefix"),
        ("amzn-s3-demo-mem", "prefix"), ("mem-s3alias", "suffix"), ("mem--ol-s3", "suffix"),
        ("mem.mrap", "suffix"), ("mem--x-s3", "suffix"), ("mem--table-s3", "suffix"),
    ],
)
def test_a_name_s3_refuses_says_why_without_quoting_it(name: str, problem: str) -> None:
    found = s3_bucket_name_problem(name)
    assert found is not None and problem in found and name not in found
