"""The Kubernetes CEL libraries, as custom functions for :mod:`kplane.cel.engine`.

Semantics follow ``k8s.io/apiserver/pkg/cel/library`` (quantity.go, semverlib.go, lists.go, regex.go, urls.go,
ip.go, cidr.go, sets.go) and the Go packages they wrap (``resource.Quantity``, ``blang/semver``, ``net/url``,
``net/netip``). Library values are tagged maps (see the engine's module docstring); each one is rebuilt from
its canonical string when a function receives it."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from kplane.cel.engine import (
    BOOL,
    DOUBLE,
    DYN,
    INT,
    STRING,
    CelError,
    CelType,
    Overload,
    list_of,
    map_of,
    unwrap,
    wrap,
)

# Shapes differ where two types share a function name (compareTo, isGreaterThan, string …).
QUANTITY = CelType("kubernetes.Quantity", opaque="map")
SEMVER = CelType("kubernetes.Semver", opaque="list")
URL = CelType("kubernetes.URL", opaque="map")
IP = CelType("net.IP", opaque="map")
CIDR = CelType("net.CIDR", opaque="list")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# --- quantity (resource.Quantity: suffixes, nano precision rounded away from zero) -------------------------

_QUANTITY_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_QUANTITY = re.compile(r"([+-]?)([0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_NANO = Fraction(1, 10**9)


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity string; :class:`CelError` with upstream's message if malformed."""
    m = _QUANTITY.fullmatch(text)
    if not m or m.group(2).count(".") > 1 or m.group(2) == ".":
        raise CelError(_QUANTITY_ERROR)
    sign, number, suffix = m.groups()
    value = Fraction(number.rstrip(".") or "0")
    if suffix in _BINARY:
        value *= 2 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
    elif re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        value *= Fraction(10) ** int(suffix[1:])
    else:
        raise CelError("unable to parse quantity's suffix")
    value = Fraction(math.ceil(value / _NANO)) * _NANO
    return -value if sign == "-" else value


def _qty(value: Fraction) -> Any:
    return wrap(QUANTITY, f"{value.numerator}/{value.denominator}")


def _q(value: Any) -> Fraction:
    return Fraction(unwrap(value))


def _is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except CelError:
        return False
    return True


def _as_integer(q: Any) -> int:
    value = _q(q)
    if value.denominator != 1 or not INT64_MIN <= value.numerator <= INT64_MAX:
        raise CelError("cannot convert value to integer")
    return value.numerator


def _is_integer(q: Any) -> bool:
    value = _q(q)
    return value.denominator == 1 and INT64_MIN <= value.numerator <= INT64_MAX


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


_QUANTITY_OVERLOADS = [
    Overload("string_to_quantity", "quantity", (STRING,), QUANTITY, lambda s: _qty(parse_quantity(s))),
    Overload("is_quantity_string", "isQuantity", (STRING,), BOOL, _is_quantity),
    Overload("quantity_sign", "sign", (QUANTITY,), INT, lambda q: _cmp(_q(q), 0), member=True),
    Overload("quantity_is_integer", "isInteger", (QUANTITY,), BOOL, _is_integer, member=True),
    Overload("quantity_as_integer", "asInteger", (QUANTITY,), INT, _as_integer, member=True),
    Overload(
        "quantity_as_approximate_float",
        "asApproximateFloat",
        (QUANTITY,),
        DOUBLE,
        lambda q: float(_q(q)),
        member=True,
    ),
    Overload(
        "quantity_compare_to",
        "compareTo",
        (QUANTITY, QUANTITY),
        INT,
        lambda a, b: _cmp(_q(a), _q(b)),
        member=True,
    ),
    Overload(
        "quantity_is_greater_than",
        "isGreaterThan",
        (QUANTITY, QUANTITY),
        BOOL,
        lambda a, b: _q(a) > _q(b),
        member=True,
    ),
    Overload(
        "quantity_is_less_than",
        "isLessThan",
        (QUANTITY, QUANTITY),
        BOOL,
        lambda a, b: _q(a) < _q(b),
        member=True,
    ),
    Overload(
        "quantity_add", "add", (QUANTITY, QUANTITY), QUANTITY, lambda a, b: _qty(_q(a) + _q(b)), member=True
    ),
    Overload("quantity_add_int", "add", (QUANTITY, INT), QUANTITY, lambda a, b: _qty(_q(a) + b), member=True),
    Overload(
        "quantity_sub", "sub", (QUANTITY, QUANTITY), QUANTITY, lambda a, b: _qty(_q(a) - _q(b)), member=True
    ),
    Overload("quantity_sub_int", "sub", (QUANTITY, INT), QUANTITY, lambda a, b: _qty(_q(a) - b), member=True),
]


# --- semver (blang/semver strict parsing; optional normalisation of "v1", "1.2" as in Kubernetes 1.31+) -----

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_Version = tuple[int, int, int, tuple[str, ...]]


def _normalise_semver(text: str) -> str:
    m = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$", text.removeprefix("v"))
    if not m:
        return text
    return ".".join(str(int(g)) if g else "0" for g in m.groups()[:3]) + m.group(4)


def parse_semver(text: str, normalise: bool = False) -> _Version:
    """Major, minor, patch and pre-release identifiers; :class:`CelError` where blang/semver refuses."""
    m = _SEMVER.match(_normalise_semver(text) if normalise else text)
    if not m:
        raise CelError(f"could not parse semver: {text!r} is not a valid semantic version")
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), pre


def _semver(text: str, normalise: bool = False) -> Any:
    major, minor, patch, pre = parse_semver(text, normalise)
    canonical = f"{major}.{minor}.{patch}" + ("-" + ".".join(pre) if pre else "")
    return wrap(SEMVER, canonical)


def _sv(value: Any) -> _Version:
    return parse_semver(unwrap(value))


def _pre_key(pre: tuple[str, ...]) -> tuple[Any, ...]:
    # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones (semver §11).
    if not pre:
        return (1,)
    return (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre))


def _semver_cmp(a: Any, b: Any) -> int:
    va, vb = _sv(a), _sv(b)
    return _cmp((va[:3], _pre_key(va[3])), (vb[:3], _pre_key(vb[3])))


def _is_semver(text: str, normalise: bool = False) -> bool:
    try:
        parse_semver(text, normalise)
    except CelError:
        return False
    return True


_SEMVER_OVERLOADS = [
    Overload("string_to_semver", "semver", (STRING,), SEMVER, _semver),
    Overload("string_bool_to_semver", "semver", (STRING, BOOL), SEMVER, _semver),
    Overload("is_semver_string", "isSemver", (STRING,), BOOL, _is_semver),
    Overload("is_semver_string_bool", "isSemver", (STRING, BOOL), BOOL, _is_semver),
    Overload("semver_major", "major", (SEMVER,), INT, lambda v: _sv(v)[0], member=True),
    Overload("semver_minor", "minor", (SEMVER,), INT, lambda v: _sv(v)[1], member=True),
    Overload("semver_patch", "patch", (SEMVER,), INT, lambda v: _sv(v)[2], member=True),
    Overload("semver_compare_to", "compareTo", (SEMVER, SEMVER), INT, _semver_cmp, member=True),
    Overload(
        "semver_is_greater_than",
        "isGreaterThan",
        (SEMVER, SEMVER),
        BOOL,
        lambda a, b: _semver_cmp(a, b) > 0,
        member=True,
    ),
    Overload(
        "semver_is_less_than",
        "isLessThan",
        (SEMVER, SEMVER),
        BOOL,
        lambda a, b: _semver_cmp(a, b) < 0,
        member=True,
    ),
]


# --- lists --------------------------------------------------------------------------------------------------


def _comparable(items: list[Any]) -> list[Any]:
    kinds = {type(i) for i in items}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise CelError("no such overload: list elements are not comparable")
    return items


def _min(items: list[Any]) -> Any:
    if not items:
        raise CelError("min called on empty list")
    return min(_comparable(items))


def _max(items: list[Any]) -> Any:
    if not items:
        raise CelError("max called on empty list")
    return max(_comparable(items))


def _sum(items: list[Any]) -> Any:
    total = sum(_comparable(items))
    if isinstance(total, int) and not INT64_MIN <= total <= INT64_MAX:
        raise CelError("integer overflow")
    return total


def _index_of(items: list[Any], value: Any) -> int:
    return next((i for i, item in enumerate(items) if item == value and type(item) is type(value)), -1)


def _last_index_of(items: list[Any], value: Any) -> int:
    found = _index_of(items[::-1], value)
    return -1 if found < 0 else len(items) - 1 - found


_ANY_LIST = list_of(DYN)
_LIST_OVERLOADS = [
    Overload(
        "list_is_sorted",
        "isSorted",
        (_ANY_LIST,),
        BOOL,
        lambda xs: all(a <= b for a, b in zip(_comparable(xs), xs[1:], strict=False)),
        member=True,
    ),
    Overload("list_sum", "sum", (_ANY_LIST,), DYN, _sum, member=True),
    Overload("list_min", "min", (_ANY_LIST,), DYN, _min, member=True),
    Overload("list_max", "max", (_ANY_LIST,), DYN, _max, member=True),
    Overload("list_index_of", "indexOf", (_ANY_LIST, DYN), INT, _index_of, member=True),
    Overload("list_last_index_of", "lastIndexOf", (_ANY_LIST, DYN), INT, _last_index_of, member=True),
]


# --- regex --------------------------------------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise CelError(f"failed to compile regex: {err}") from None


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def _find(text: str, pattern: str) -> str:
    m = _regex(pattern).search(text)
    return m.group(0) if m else ""


_REGEX_OVERLOADS = [
    Overload("string_find", "find", (STRING, STRING), STRING, _find, member=True),
    Overload("string_find_all", "findAll", (STRING, STRING), list_of(STRING), _find_all, member=True),
    Overload("string_find_all_n", "findAll", (STRING, STRING, INT), list_of(STRING), _find_all, member=True),
]


# --- url (net/url ParseRequestURI: an absolute URL or an absolute path) -------------------------------------


def _url(text: str) -> Any:
    parts = urlsplit(text)
    if not (parts.scheme and (parts.netloc or parts.path)) and not text.startswith("/"):
        raise CelError(
            f'URL parse error during conversion from string: parse "{text}": invalid URI for request'
        )
    return wrap(URL, text)


def _is_url(text: str) -> bool:
    try:
        _url(text)
    except CelError:
        return False
    return True


def _host(u: Any) -> str:
    return urlsplit(unwrap(u)).netloc.rpartition("@")[2]


def _hostname(u: Any) -> str:
    host = _host(u)
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    return host.rpartition(":")[0] if ":" in host else host


def _port(u: Any) -> str:
    host = _host(u)
    tail = host[host.index("]") + 1 :] if host.startswith("[") and "]" in host else host
    return tail.rpartition(":")[2] if ":" in tail else ""


def _query(u: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(unwrap(u)).query, keep_blank_values=True)


_URL_OVERLOADS = [
    Overload("string_to_url", "url", (STRING,), URL, _url),
    Overload("is_url_string", "isURL", (STRING,), BOOL, _is_url),
    Overload(
        "url_get_scheme", "getScheme", (URL,), STRING, lambda u: urlsplit(unwrap(u)).scheme, member=True
    ),
    Overload("url_get_host", "getHost", (URL,), STRING, _host, member=True),
    Overload("url_get_hostname", "getHostname", (URL,), STRING, _hostname, member=True),
    Overload("url_get_port", "getPort", (URL,), STRING, _port, member=True),
    Overload(
        "url_get_escaped_path",
        "getEscapedPath",
        (URL,),
        STRING,
        lambda u: quote(unquote(urlsplit(unwrap(u)).path), safe="/!$&'()*+,;=:@~"),
        member=True,
    ),
    Overload("url_get_query", "getQuery", (URL,), map_of(STRING, list_of(STRING)), _query, member=True),
]


# --- ip / cidr (net/netip: no zones, no IPv4-mapped IPv6, no leading zeros) ---------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def parse_ip(text: str) -> Address:
    if "%" in text:
        raise CelError("IP address with zone value is not allowed")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise CelError(
            f'IP Address "{text}" parse error during conversion from string: '
            f'ParseAddr("{text}"): unable to parse IP'
        ) from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise CelError("IPv4-mapped IPv6 address is not allowed")
    return addr


def parse_cidr(text: str) -> Network:
    address, slash, bits = text.partition("/")
    if not slash or not re.fullmatch(r"0|[1-9][0-9]{0,2}", bits):
        raise CelError(
            f'network address parse error during conversion from string: netip.ParsePrefix("{text}"): '
            "bad bits after slash"
        )
    addr = parse_ip(address)
    if int(bits) > addr.max_prefixlen:
        raise CelError(
            f'network address parse error during conversion from string: netip.ParsePrefix("{text}"): '
            "prefix length out of range"
        )
    return ipaddress.ip_interface(f"{addr}/{bits}")


def _ip(value: Any) -> Address:
    return ipaddress.ip_address(unwrap(value))


def _net(value: Any) -> Network:
    return ipaddress.ip_interface(unwrap(value))


def _ip_value(addr: Address) -> Any:
    return wrap(IP, str(addr))


def _cidr_value(net: Network) -> Any:
    return wrap(CIDR, str(net))


def _valid(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except CelError:
            return False
        return True

    return check


def _global_unicast(addr: Address) -> bool:
    # Go's IsGlobalUnicast: private ranges count; unspecified, loopback, multicast, link-local do not.
    if addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_link_local:
        return False
    return not (isinstance(addr, ipaddress.IPv4Address) and addr == ipaddress.IPv4Address("255.255.255.255"))


def _link_local_multicast(addr: Address) -> bool:
    if isinstance(addr, ipaddress.IPv4Address):
        return addr in ipaddress.IPv4Network("224.0.0.0/24")
    return addr.packed[0] == 0xFF and addr.packed[1] & 0x0F == 0x02


def _contains_ip(net: Any, other: Any) -> bool:
    addr = parse_ip(other) if isinstance(other, str) else _ip(other)
    network = _net(net).network
    return addr.version == network.version and addr in network


def _contains_cidr(net: Any, other: Any) -> bool:
    inner = (parse_cidr(other) if isinstance(other, str) else _net(other)).network
    outer = _net(net).network
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _member(name: str, t: CelType, result: CelType, impl: Callable[..., Any]) -> Overload:
    return Overload(f"{t.name.split('.')[-1].lower()}_{name}", name, (t,), result, impl, member=True)


_NET_OVERLOADS = [
    Overload("string_to_ip", "ip", (STRING,), IP, lambda s: _ip_value(parse_ip(s))),
    Overload("is_ip_string", "isIP", (STRING,), BOOL, _valid(parse_ip)),
    Overload("ip_is_canonical_string", "ip.isCanonical", (STRING,), BOOL, lambda s: str(parse_ip(s)) == s),
    Overload("ip_to_string", "string", (IP,), STRING, unwrap),
    _member("family", IP, INT, lambda v: _ip(v).version),
    _member("isUnspecified", IP, BOOL, lambda v: _ip(v).is_unspecified),
    _member("isLoopback", IP, BOOL, lambda v: _ip(v).is_loopback),
    _member("isLinkLocalMulticast", IP, BOOL, lambda v: _link_local_multicast(_ip(v))),
    _member("isLinkLocalUnicast", IP, BOOL, lambda v: _ip(v).is_link_local),
    _member("isGlobalUnicast", IP, BOOL, lambda v: _global_unicast(_ip(v))),
    Overload("string_to_cidr", "cidr", (STRING,), CIDR, lambda s: _cidr_value(parse_cidr(s))),
    Overload("is_cidr_string", "isCIDR", (STRING,), BOOL, _valid(parse_cidr)),
    Overload("cidr_to_string", "string", (CIDR,), STRING, unwrap),
    Overload("cidr_contains_ip_ip", "containsIP", (CIDR, IP), BOOL, _contains_ip, member=True),
    Overload("cidr_contains_ip_string", "containsIP", (CIDR, STRING), BOOL, _contains_ip, member=True),
    Overload("cidr_contains_cidr_cidr", "containsCIDR", (CIDR, CIDR), BOOL, _contains_cidr, member=True),
    Overload("cidr_contains_cidr_string", "containsCIDR", (CIDR, STRING), BOOL, _contains_cidr, member=True),
    _member("ip", CIDR, IP, lambda v: _ip_value(_net(v).ip)),
    _member("masked", CIDR, CIDR, lambda v: _cidr_value(ipaddress.ip_interface(str(_net(v).network)))),
    _member("prefixLength", CIDR, INT, lambda v: _net(v).network.prefixlen),
]


# --- sets (cel-go ext.Sets, part of the Kubernetes base environment) ----------------------------------------


def _contains_all(outer: list[Any], inner: list[Any]) -> bool:
    return all(any(x == y for y in outer) for x in inner)


_SET_OVERLOADS = [
    Overload("list_sets_contains_list", "sets.contains", (_ANY_LIST, _ANY_LIST), BOOL, _contains_all),
    Overload(
        "list_sets_equivalent_list",
        "sets.equivalent",
        (_ANY_LIST, _ANY_LIST),
        BOOL,
        lambda a, b: _contains_all(a, b) and _contains_all(b, a),
    ),
    Overload(
        "list_sets_intersects_list",
        "sets.intersects",
        (_ANY_LIST, _ANY_LIST),
        BOOL,
        lambda a, b: any(x == y for x in a for y in b),
    ),
]

OVERLOADS: list[Overload] = [
    *_QUANTITY_OVERLOADS,
    *_SEMVER_OVERLOADS,
    *_LIST_OVERLOADS,
    *_REGEX_OVERLOADS,
    *_URL_OVERLOADS,
    *_NET_OVERLOADS,
    *_SET_OVERLOADS,
]
