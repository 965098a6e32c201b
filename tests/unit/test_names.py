"""Name syntax checks: upstream's exact messages, limits, and the generateName trailing-dash rule."""

from __future__ import annotations

import pytest

from kplane.api import names

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize("good", ["a", "example.com", "a-b.c-d", "0abc", "x" * 253])
def test_subdomain_accepts(good: str) -> None:
    assert names.is_dns1123_subdomain(good) == []


@pytest.mark.parametrize("bad", ["", "A", "-a", "a-", "a..b", "a_b", "a.", "a\n"])
def test_subdomain_rejects_with_upstream_message(bad: str) -> None:
    assert names.is_dns1123_subdomain(bad) == [SUBDOMAIN_MSG]


def test_subdomain_too_long_reports_length_first() -> None:
    assert names.is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]
    assert names.is_dns1123_subdomain("A" * 254) == ["must be no more than 253 characters", SUBDOMAIN_MSG]


def test_label_rules() -> None:
    assert names.is_dns1123_label("my-name") == []
    assert names.is_dns1123_label("My") == [LABEL_MSG]
    assert names.is_dns1123_label("a.b") == ["must not contain dots"]
    assert names.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]


def test_dns1035_requires_leading_letter() -> None:
    assert names.is_dns1035_label("svc-1") == []
    assert names.is_dns1035_label("1svc") == [DNS1035_MSG]


def test_qualified_name() -> None:
    assert names.is_qualified_name("app.kubernetes.io/name") == []
    assert names.is_qualified_name("MyName") == []
    assert names.is_qualified_name("/name") == ["prefix part must be non-empty"]
    errs = names.is_qualified_name("example.com/")
    assert errs[0] == "name part must be non-empty"
    assert errs[1].startswith("name part must consist of alphanumeric characters")
    assert names.is_qualified_name("a/b/c")[0].startswith("a qualified name must consist of")
    assert names.is_qualified_name("a/b/c")[0].endswith(
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    )
    assert names.is_qualified_name("Bad_Prefix/x")[0].startswith("prefix part a lowercase RFC 1123 subdomain")
    assert names.is_qualified_name("x" * 64) == ["name part must be no more than 63 characters"]


def test_label_value() -> None:
    assert names.is_valid_label_value("") == []
    assert names.is_valid_label_value("v1.2_x") == []
    assert names.is_valid_label_value("-x")[0].startswith("a valid label must be an empty string or consist")
    assert names.is_valid_label_value("x" * 64) == ["must be no more than 63 characters"]


def test_config_map_key() -> None:
    assert names.is_config_map_key("key.name") == []
    assert names.is_config_map_key("KEY_NAME-1") == []
    assert names.is_config_map_key("a/b") == [
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
        "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    ]
    assert names.is_config_map_key(".") == ["must not be '.'"]
    assert names.is_config_map_key("..") == ["must not be '..'"]
    assert names.is_config_map_key("..a") == ["must not start with '..'"]


def test_ports_and_percent() -> None:
    assert names.is_valid_port_num(1) == [] and names.is_valid_port_num(65535) == []
    assert names.is_valid_port_num(0) == ["must be between 1 and 65535, inclusive"]
    assert names.is_valid_port_name("http") == []
    assert names.is_valid_port_name("123") == ["must contain at least one letter (a-z)"]
    assert "must not contain consecutive hyphens" in names.is_valid_port_name("a--b")
    assert "must not begin or end with a hyphen" in names.is_valid_port_name("-ab")
    assert names.is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]
    assert names.is_valid_percent("25%") == []
    assert names.is_valid_percent("25") == [
        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
        "regex used for validation is '[0-9]+%')"
    ]


def test_generate_name_prefix_masks_trailing_dash() -> None:
    assert names.name_is_dns_subdomain("web-", prefix=True) == []
    assert names.name_is_dns_subdomain("web-", prefix=False) == [SUBDOMAIN_MSG]
    assert names.name_is_dns1035_label("svc-", prefix=True) == []
