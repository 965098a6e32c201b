"""kplane.api.selectors: label and field selector grammar, matching, validation texts and round trips.

The tables are our own data modelled on the cases in k8s.io/apimachinery pkg/labels/selector_test.go and
pkg/fields/selector_test.go (TestSetSelectorParser, TestSelectorMatches, TestRequirementConstructor …).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kplane.api.selectors import (
    FieldSelector,
    LabelSelector,
    Requirement,
    field_value,
    label_selector_from_dict,
    new_requirement,
    parse_field_selector,
    parse_label_selector,
)
from kplane.api.status import StatusError

CHARS = "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
NAME_EXAMPLES = (
    "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
NAME_RULE = f"name part must consist of {CHARS} {NAME_EXAMPLES}"
VALUE_RULE = (
    f"a valid label must be an empty string or consist of {CHARS} (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NIL = "unable to parse requirement: <nil>: Invalid value: "


def req(key: str, op: str, *values: str) -> Requirement:
    return Requirement(key, op, tuple(sorted(set(values))))


def bad(fn: Any, *args: Any) -> StatusError:
    with pytest.raises(StatusError) as info:
        fn(*args)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    return info.value


# ---- label selector parsing ----


@pytest.mark.parametrize(
    ("text", "requirements"),
    [
        ("", ()),
        ("   ", ()),
        ("\rx", (req("x", "exists"),)),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            (req("this-is-a-dns.domain.com/key-with-dash", "exists"),),
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            (req("this-is-another-dns.domain.com/key-with-dash", "in", "so", "what"),),
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tock.clock)",
            (req("0.1.2.domain/99", "notin", "10.10.100.1", "tick.tock.clock"),),
        ),
        ("foo  in\t (abc)", (req("foo", "in", "abc"),)),
        ("x notin\n (abc)", (req("x", "notin", "abc"),)),
        ("x in (abc,def)", (req("x", "in", "abc", "def"),)),
        ("x in (abc,)", (req("x", "in", "abc", ""),)),
        ("x in ()", (req("x", "in", ""),)),
        ("x notin ( )", (req("x", "notin", ""),)),
        ("x notin (, a)", (req("x", "notin", "", "a"),)),
        (
            "x notin (abc,,def),bar,z in (),w",
            (
                req("bar", "exists"),
                req("w", "exists"),
                req("x", "notin", "abc", "def", ""),
                req("z", "in", ""),
            ),
        ),
        ("x,y in (a)", (req("x", "exists"), req("y", "in", "a"))),
        ("x=a", (req("x", "=", "a"),)),
        ("x==a", (req("x", "==", "a"),)),
        ("x>1", (req("x", "gt", "1"),)),
        ("x<7", (req("x", "lt", "7"),)),
        ("x>007", (req("x", "gt", "007"),)),
        ("x=a,y!=b,z in (h,i,j)", (req("x", "=", "a"), req("y", "!=", "b"), req("z", "in", "h", "i", "j"))),
        ("x=", (req("x", "=", ""),)),
        ("x= ,z= ", (req("x", "=", ""), req("z", "=", ""))),
        ("!x", (req("x", "!"),)),
        ("a ", (req("a", "exists"),)),
        ("a in (x,y,notin, z,in)", (req("a", "in", "in", "notin", "x", "y", "z"),)),
        ("notin=in", (req("notin", "=", "in"),)),
        ("z=1,a=2,z=0", (req("a", "=", "2"), req("z", "=", "1"), req("z", "=", "0"))),  # stable sort by key
    ],
)
def test_parse_good(text: str, requirements: tuple[Requirement, ...]) -> None:
    assert parse_label_selector(text).requirements == requirements


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=a||y=b", f'unable to parse requirement: values[0][x]: Invalid value: "a||y": {VALUE_RULE}'),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (
            "x<a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
        ("x>-1", f'unable to parse requirement: values[0][x]: Invalid value: "-1": {VALUE_RULE}'),
        ("x in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
        (
            "x>1.5",
            "unable to parse requirement: values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
        ("x,,y", "found ',', expected: identifier after ','"),
        (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
        ("x,", "found '', expected: identifier after ','"),
        (
            "x nott in (y)",
            "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a in (xyz),", "found '', expected: identifier after ','"),
        ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
        ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"),
        ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in (a=)", "unable to parse requirement: found '=', expected: ',' or ')'"),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("app:monolith", f'{NIL}"app:monolith": {NAME_RULE}'),
        (
            "a/b/c=d",
            f'{NIL}"a/b/c": a qualified name must consist of {CHARS} {NAME_EXAMPLES} with an optional '
            "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "app.kubernetes_io/name=x",
            f'{NIL}"app.kubernetes_io/name": '
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        ("/x", 'unable to parse requirement: <nil>: Invalid value: "/x": prefix part must be non-empty'),
        ("x" * 64, f'{NIL}"{"x" * 64}": name part must be no more than 63 characters'),
        ("~", f'{NIL}"~": {NAME_RULE}'),
        (
            "x=" + "v" * 64,
            f'unable to parse requirement: values[0][x]: Invalid value: "{"v" * 64}": must be no '
            "more than 63 characters",
        ),
    ],
)
def test_parse_bad(text: str, message: str) -> None:
    assert bad(parse_label_selector, text).message == message


def test_parse_is_deterministic_and_canonical() -> None:
    canonical = "x in (a,b),y"
    assert str(parse_label_selector("x in (b,a),y")) == str(parse_label_selector("y,x in (a,b)")) == canonical
    assert parse_label_selector("x in (b,a,b)") == parse_label_selector("x in (a,b)")


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("x in (abc,def),y notin (jkl),z", "x in (abc,def),y notin (jkl),z"),
        ("x notin (abc,def),y!=jkl,!z", "x notin (abc,def),y!=jkl,!z"),
        ("x in (abc,def),y notin (jkl),z in ()", "x in (abc,def),y notin (jkl),z in ()"),
        ("x=,y==b,z>3,w<2", "w<2,x=,y==b,z>3"),
    ],
)
def test_to_string(text: str, rendered: str) -> None:
    assert str(parse_label_selector(text)) == rendered


# ---- label selector matching ----

LABELS = {"foo": "bar", "baz": "blah", "n": "5"}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {"x": "y"}, True),
        ("x=y", {"x": "y"}, True),
        ("x==y", {"x": "y"}, True),
        ("x=y,z=w", {"x": "y", "z": "w"}, True),
        ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
        ("notin=in", {"notin": "in"}, True),
        ("x", {"x": "z"}, True),
        ("!x", {"y": "z"}, True),
        ("x>1", {"x": "2"}, True),
        ("x<1", {"x": "0"}, True),
        ("x<1", {"x": "-3"}, True),
        ("x>9", {"x": "+10"}, True),
        ("x>9", {"x": "99999999999999999999"}, False),
        ("x!=y", {}, True),
        ("x notin (a)", {}, True),
        ("x=", {"x": ""}, True),
        ("x=z", {}, False),
        ("x=y", {"x": "z"}, False),
        ("x=y,z=w", {"x": "w", "z": "w"}, False),
        ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
        ("x", {"y": "z"}, False),
        ("!x", {"x": "z"}, False),
        ("x>1", {"x": "0"}, False),
        ("x<1", {"x": "2"}, False),
        ("x>1", {"x": "two"}, False),
        ("x>1", {"x": "1_0"}, False),
        ("x>1", {}, False),
        ("x=", {}, False),
        ("foo=bar,baz=blah", LABELS, True),
        ("foo in (bar,x),baz notin (x),n>4", LABELS, True),
        ("foo=blah", LABELS, False),
        ("foo=bar,foobar=bar,baz=blah", LABELS, False),
        ("foo in (x,y)", LABELS, False),
    ],
)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_empty_and_nothing() -> None:
    everything = parse_label_selector("")
    assert everything.empty and everything.matches({}) and everything.matches(None)
    nothing = label_selector_from_dict(None)
    assert not nothing.empty and not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert str(nothing) == ""
    assert not parse_label_selector("a").empty


# ---- metav1.LabelSelector ----


def test_from_dict() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["a"]},
                {"key": "team", "operator": "Exists"},
            ],
        }
    )
    assert str(selector) == "app=web,!canary,env in (dev,prod),team,tier=front,zone notin (a)"
    assert selector.matches({"app": "web", "tier": "front", "env": "dev", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "front", "env": "dev", "team": "x", "canary": "1"})
    assert label_selector_from_dict({}).empty
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).matches({"any": "thing"})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
        ),
        ({"matchLabels": {"bad key": "v"}}, f'key: Invalid value: "bad key": {NAME_RULE}'),
        ({"matchLabels": {"k": "bad value"}}, f'values[0][k]: Invalid value: "bad value": {VALUE_RULE}'),
    ],
)
def test_from_dict_errors(selector: dict[str, Any], message: str) -> None:
    assert bad(label_selector_from_dict, selector).message == message


@pytest.mark.parametrize(
    ("key", "op", "values", "message"),
    [
        (
            "x5",
            "=",
            ["foo", "bar"],
            'values: Invalid value: []string{"foo", "bar"}: '
            "exact-match compatibility requires one single value",
        ),
        (
            "x13",
            "gt",
            [],
            "values: Invalid value: []string(nil): for 'Gt', 'Lt' operators, exactly one value is required",
        ),
        (
            "x",
            "~",
            [],
            'operator: Unsupported value: "~": supported values: "!", "=", "==", "in", "!=", "notin", '
            '"exists", "gt", "lt"',
        ),
        (
            "bad key",
            "in",
            ["bad value"],
            f'[key: Invalid value: "bad key": {NAME_RULE}, '
            f'values[0][bad key]: Invalid value: "bad value": {VALUE_RULE}]',
        ),
    ],
)
def test_requirement_constructor_errors(key: str, op: str, values: list[str], message: str) -> None:
    assert bad(new_requirement, key, op, values).message == message


# ---- round trips ----

_alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_names = st.builds(
    lambda a, mid, b: a + mid + b,
    st.sampled_from(_alnum),
    st.text(_alnum + "-_.", max_size=8),
    st.sampled_from(_alnum),
) | st.sampled_from(_alnum)
_dns = st.lists(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True), min_size=1, max_size=3)
keys = st.builds(
    lambda prefix, name: f"{'.'.join(prefix)}/{name}" if prefix else name, st.none() | _dns, _names
) | st.sampled_from(["in", "notin"])
values = st.just("") | _names | st.sampled_from(["in", "notin"])
numbers = st.integers(0, 2**63 - 1).map(str)  # a leading "-" is not a valid label value
terms = st.one_of(
    st.tuples(keys, st.sampled_from(["=", "==", "!="]), values).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.tuples(keys, st.sampled_from([">", "<"]), numbers).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.tuples(
        keys, st.sampled_from(["in", "notin"]), st.lists(values, min_size=1, max_size=4, unique=True)
    ).map(lambda t: f"{t[0]} {t[1]} ({','.join(t[2])})"),
    keys,
    keys.map(lambda k: "!" + k),
)


@given(st.lists(terms, max_size=5))
def test_label_round_trip_from_valid_terms(parts: list[str]) -> None:
    selector = parse_label_selector(",".join(parts))
    assert len(selector.requirements) == len(parts)
    assert parse_label_selector(str(selector)) == selector


@given(st.text(alphabet="ab/.-_=!(),<> \t1in", max_size=20))
def test_label_round_trip_or_clean_error_on_any_text(text: str) -> None:
    try:
        selector = parse_label_selector(text)
    except StatusError as err:
        assert err.code == 400
        return
    again = parse_label_selector(str(selector))
    assert again == selector
    assert str(again) == str(selector)


# ---- field selectors ----

ALLOWED = {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"}
POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "hostNetwork": True, "priority": 7},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("", ""),
        ("metadata.name=p", "metadata.name=p"),
        ("metadata.name==p", "metadata.name=p"),
        ("status.phase!=Failed,status.phase!=Succeeded", "status.phase!=Failed,status.phase!=Succeeded"),
        ("spec.nodeName=", "spec.nodeName="),
        ("metadata.name=p,metadata.name=p", "metadata.name=p,metadata.name=p"),
        ("metadata.name=a\\,b\\=c\\\\d", "metadata.name=a\\,b\\=c\\\\d"),
        (",,metadata.name=p,", "metadata.name=p"),
        ("status.phase=Running,metadata.name=p", "metadata.name=p,status.phase=Running"),
    ],
)
def test_field_parse_good(text: str, rendered: str) -> None:
    assert str(parse_field_selector(text, ALLOWED)) == rendered


def test_field_escapes_decode_into_values() -> None:
    selector = parse_field_selector("metadata.name=a\\,b\\=c\\\\d", ALLOWED)
    assert selector.requirements == (Requirement("metadata.name", "=", ("a,b=c\\d",)),)
    assert selector.exact_name() == "a,b=c\\d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "invalid selector: 'x'; can't understand 'x'"),
        ("metadata.name=a,b", "invalid selector: 'metadata.name=a,b'; can't understand 'b'"),
        ("metadata.name==a==b", "invalid field selector: unescaped character in value: ="),
        ("metadata.name=a||y=b", "invalid field selector: unescaped character in value: ="),
        ("metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
        ("spec.foo=bar", "field label not supported: spec.foo"),
        ("z.unknown=1,a.unknown=2", "field label not supported: a.unknown"),
        ("x in (a)", "invalid selector: 'x in (a)'; can't understand 'x in (a)'"),
    ],
)
def test_field_parse_bad(text: str, message: str) -> None:
    assert bad(parse_field_selector, text, ALLOWED).message == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("metadata.name=p", True),
        ("metadata.name=p,metadata.namespace=ns", True),
        ("status.phase!=Failed,status.phase!=Succeeded", True),
        ("spec.nodeName=n1", True),
        ("metadata.name=q", False),
        ("metadata.name!=p", False),
        ("status.phase=Pending", False),
        ("metadata.name=p,metadata.name=q", False),
    ],
)
def test_field_matches(text: str, expected: bool) -> None:
    assert parse_field_selector(text, ALLOWED).matches(POD) is expected


def test_field_absent_reads_as_empty_string() -> None:
    unscheduled = {"metadata": {"name": "p"}, "spec": {}}
    assert parse_field_selector("spec.nodeName=", ALLOWED).matches(unscheduled)
    assert not parse_field_selector("spec.nodeName!=", ALLOWED).matches(unscheduled)
    assert parse_field_selector("metadata.namespace=", ALLOWED).matches(unscheduled)


def test_field_matches_with_custom_value_function() -> None:
    selector = parse_field_selector("spec.hostNetwork=false", {"spec.hostNetwork"})

    def with_bool_default(obj: Any, path: str) -> str | None:
        return field_value(obj, path) or "false"

    assert selector.matches({"spec": {}}, with_bool_default)
    assert not selector.matches({"spec": {}})


def test_exact_name() -> None:
    assert parse_field_selector("metadata.name=w1,metadata.name=w1", ALLOWED).exact_name() == "w1"
    assert parse_field_selector("metadata.namespace=ns,metadata.name=w1", ALLOWED).exact_name() == "w1"
    assert parse_field_selector("metadata.name!=w1", ALLOWED).exact_name() is None
    assert parse_field_selector("", ALLOWED).exact_name() is None
    assert parse_field_selector("", ALLOWED).empty


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "p"),
        ("spec.nodeName", "n1"),
        ("spec.hostNetwork", "true"),
        ("spec.priority", "7"),
        ("spec.missing", None),
        ("spec", None),
        ("metadata.name.deeper", None),
    ],
)
def test_field_value(path: str, expected: str | None) -> None:
    assert field_value(POD, path) == expected


@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(ALLOWED)),
            st.sampled_from(["=", "==", "!="]),
            st.text(alphabet="ab,=\\ .", max_size=6),
        ),
        max_size=4,
    )
)
def test_field_round_trip(terms: list[tuple[str, str, str]]) -> None:
    text = ",".join(
        f"{f}{op}{''.join(chr(92) + c if c in ',=' + chr(92) else c for c in v)}" for f, op, v in terms
    )
    selector = parse_field_selector(text, ALLOWED)
    assert sorted(r.values[0] for r in selector.requirements) == sorted(v for _, _, v in terms)
    assert parse_field_selector(str(selector), ALLOWED) == selector


def test_selectors_are_immutable() -> None:
    selector = parse_label_selector("a=b")
    with pytest.raises(AttributeError):
        selector.requirements = ()  # type: ignore[misc]
    assert isinstance(selector, LabelSelector)
    assert isinstance(parse_field_selector("", ALLOWED), FieldSelector)
