"""The CEL adapter and the Kubernetes CEL libraries."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.cel import DYN, INT, STRING, CelError, list_of, map_of
from kplane.cel import compile as cel_compile


def run(expr: str, **variables: Any) -> Any:
    return cel_compile(expr, {name: DYN for name in variables}).evaluate(variables)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # quantity
        ('quantity("1Gi").asInteger()', 1024**3),
        ('quantity("500m").compareTo(quantity("0.5"))', 0),
        ('quantity("1Gi") == quantity("1024Mi")', True),
        ('quantity("1").add(2).isGreaterThan(quantity("2900m"))', True),
        ('quantity("3").sub(quantity("500m")).isLessThan(quantity("3"))', True),
        ('quantity("1k").asApproximateFloat()', 1000.0),
        ('quantity("-2").sign()', -1),
        ('quantity("0").sign()', 0),
        ('quantity("1.5").isInteger()', False),
        ('quantity("2e3").asInteger()', 2000),
        ('isQuantity("1e3")', True),
        ('isQuantity("1 Gi")', False),
        ('isQuantity("1Gb")', False),
        # semver
        ('semver("1.2.3").major()', 1),
        ('semver("1.2.3").minor()', 2),
        ('semver("1.2.3").patch()', 3),
        ('semver("1.2.3-alpha").isLessThan(semver("1.2.3"))', True),
        ('semver("1.2.3-alpha.2").compareTo(semver("1.2.3-alpha.10"))', -1),
        ('semver("1.10.0").isGreaterThan(semver("1.9.9"))', True),
        ('semver("1.0.0+build").compareTo(semver("1.0.0"))', 0),
        ('semver("v1.2", true).minor()', 2),
        ('isSemver("1.2")', False),
        ('isSemver("v01.2", true)', True),
        # lists
        ("[1, 2, 3].isSorted()", True),
        ('["b", "a"].isSorted()', False),
        ("[1, 2].sum()", 3),
        ("[].sum()", 0),
        ("[1.5, 2.0].max()", 2.0),
        ("[3, 1, 2].min()", 1),
        ("[1, 2, 1].indexOf(1)", 0),
        ("[1, 2, 1].lastIndexOf(1)", 2),
        ("[1, 2].indexOf(5)", -1),
        # regex
        ('"abc123def456".find("[0-9]+")', "123"),
        ('"abc".find("[0-9]+")', ""),
        ('"abc123def456".findAll("[0-9]+")', ["123", "456"]),
        ('"a1b2c3".findAll("[0-9]", 2)', ["1", "2"]),
        # url
        ('url("https://user@example.com:8080/a%20b?x=1").getHost()', "example.com:8080"),
        ('url("https://example.com/p").getScheme()', "https"),
        ('url("https://[::1]:80/").getHostname()', "::1"),
        ('url("https://[::1]:80/").getPort()', "80"),
        ('url("https://example.com/").getPort()', ""),
        ('url("https://e.com/a%20b").getEscapedPath()', "/a%20b"),
        ('url("https://e.com/?x=1&x=2&y").getQuery()', {"x": ["1", "2"], "y": [""]}),
        ('isURL("/absolute/path")', True),
        ('isURL("relative/path")', False),
        # ip / cidr
        ('ip("10.0.0.1").family()', 4),
        ('ip("::1").family()', 6),
        ('ip("::1").isLoopback()', True),
        ('ip("10.1.2.3").isGlobalUnicast()', True),
        ('ip("169.254.1.1").isLinkLocalUnicast()', True),
        ('ip("224.0.0.1").isLinkLocalMulticast()', True),
        ('ip("0.0.0.0").isUnspecified()', True),
        ('string(ip("2001:db8::1"))', "2001:db8::1"),
        ('ip.isCanonical("2001:db8::0:1")', False),
        ('isIP("1.2.3")', False),
        ('isIP("01.2.3.4")', False),
        ('string(cidr("10.0.0.1/8").masked())', "10.0.0.0/8"),
        ('string(cidr("10.0.0.1/8").ip())', "10.0.0.1"),
        ('cidr("10.0.0.0/8").containsIP("10.1.1.1")', True),
        ('cidr("10.0.0.0/8").containsIP(ip("11.0.0.1"))', False),
        ('cidr("10.0.0.0/8").containsIP(ip("::1"))', False),
        ('cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16")', True),
        ('cidr("10.0.0.0/8").prefixLength()', 8),
        ('isCIDR("10.0.0.0")', False),
        ('isCIDR("10.0.0.0/33")', False),
        # sets, strings, optionals, math, bindings
        ("sets.contains([1, 2], [2])", True),
        ("sets.equivalent([1, 2], [2, 1, 1])", True),
        ("sets.intersects([1], [2])", False),
        ('"AbC".lowerAscii() + "x".upperAscii()', "abcX"),
        ('"a,b".split(",")', ["a", "b"]),
        ('["a", "b"].join("-")', "a-b"),
        ('"aXa".replace("a", "b")', "bXb"),
        ('"hello".substring(1, 3)', "el"),
        ('"  x ".trim()', "x"),
        ('"abc".indexOf("c")', 2),
        ('"%s has %d".format(["x", 3])', "x has 3"),
        ("{'a': 1}.?b.orValue(7)", 7),
        ("math.greatest(1, 5)", 5),
        ("cel.bind(x, 2, x * x)", 4),
    ],
)
def test_library_functions(expr: str, expected: Any) -> None:
    assert run(expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ('quantity("x")', "quantities must match the regular expression"),
        ('quantity("1.5").asInteger()', "cannot convert value to integer"),
        ('quantity("1Ki").asInteger() + quantity("9Ei").add(quantity("9Ei")).asInteger()', "cannot convert"),
        ('semver("01.2.3")', "semver"),
        ("[].min()", "min called on empty list"),
        ('[1, "a"].max()', "no such overload"),
        ('"x".find("(")', "failed to compile regex"),
        ('url("example.com")', "invalid URI for request"),
        ('ip("::ffff:1.2.3.4")', "IPv4-mapped IPv6 address is not allowed"),
        ('ip("fe80::1%eth0")', "zone value is not allowed"),
        ('cidr("10.0.0.0")', "ParsePrefix"),
        ("1 / 0", "division by zero"),
        ("self.missing", "no such key: missing"),
        ("[1][3]", "index out of bounds: 3"),
        ("9223372036854775807 + 1", "integer overflow"),
    ],
)
def test_runtime_errors(expr: str, message: str) -> None:
    with pytest.raises(CelError) as err:
        run(expr, self={"present": 1})
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("self.x +", "Syntax error"),
        ('1 + "a"', "found no matching overload for '_+_' applied to '(int, string)'"),
        ("undeclared_var", "undeclared reference to 'undeclared_var'"),
        ('semver("1.0.0").compareTo(quantity("1"))', "'(kubernetes.Semver, kubernetes.Quantity)'"),
        ("quantity(1)", "found no matching overload for 'quantity'"),
        ("nosuchfunction(1)", "undeclared reference to 'nosuchfunction'"),
    ],
)
def test_compile_errors(expr: str, message: str) -> None:
    with pytest.raises(CelError) as err:
        cel_compile(expr, {"self": DYN})
    assert message in str(err.value)
    assert str(err.value).startswith("ERROR: <input>:1:")
    assert "INVALID_ARGUMENT" not in str(err.value)


def test_declared_types_are_checked() -> None:
    program = cel_compile("self.size() > n", {"self": list_of(STRING), "n": INT})
    assert program.evaluate({"self": ["a", "b"], "n": 1}) is True
    assert program.result_type == "bool"
    with pytest.raises(CelError, match="no matching overload"):
        cel_compile("self + n", {"self": map_of(STRING, DYN), "n": INT})


def test_standard_library_has_no_kubernetes_functions() -> None:
    with pytest.raises(CelError, match="undeclared reference to 'quantity'"):
        cel_compile('quantity("1")', {}, library="standard")
    assert cel_compile('"A".lowerAscii()', {}, library="standard").evaluate({}) == "a"
    with pytest.raises(CelError, match="unknown CEL library"):
        cel_compile("1", {}, library="nope")


def test_user_maps_are_not_library_values() -> None:
    # A map that merely looks like a library value still cannot reach the library's functions.
    with pytest.raises(CelError, match="no such overload"):
        run("self.compareTo(self)", self={"v": "1"})
