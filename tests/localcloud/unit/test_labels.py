import pytest

from localcloud.api.labels import parse_selector, validate
from localcloud.errors import APIError

L = {"env": "prod", "tier": "web", "managed-by": "imagekit"}


@pytest.mark.parametrize(
    "selector,expected",
    [
        ("env=prod", True), ("env==prod", True), ("env=dev", False), ("env!=dev", True), ("env!=prod", False),
        ("tier", True), ("missing", False), ("!missing", True), ("!env", False),
        ("env in (prod,dev)", True), ("env in (dev, test)", False), ("env notin (dev,test)", True),
        ("env notin (prod)", False), ("missing notin (a)", True),
        ("env=prod,tier=web", True), ("env=prod,tier=db", False), ("env in (prod,dev),!missing,managed-by", True),
    ],
)
def test_selector(selector, expected):
    assert parse_selector(selector)(L) is expected


@pytest.mark.parametrize("selector", ["env=prod,", "=x", "a b c", "env in prod"])
def test_bad_selector_is_invalid_input(selector):
    with pytest.raises(APIError) as exc:
        parse_selector(selector)
    assert exc.value.code == "invalid_input"


@pytest.mark.parametrize("labels", [{"bad key": "v"}, {"k": "bad value!"}, {"k": 1}, {"k": "x" * 64}, ["k"]])
def test_invalid_labels(labels):
    with pytest.raises(APIError):
        validate(labels)


def test_valid_labels():
    assert validate({"example.com/role": "builder", "empty": ""}) == {"example.com/role": "builder", "empty": ""}
