"""Decode Kubernetes protobuf request bodies into the JSON form of the object.

kubectl's typed commands (``create namespace|configmap|secret|deployment|…``, ``create token``,
``auth can-i``) POST ``application/vnd.kubernetes.protobuf`` and client-go never retries a 415 as JSON
(python-k8s.md §1.4), so the server must read these bodies. The body is the ``k8s\\x00`` magic followed by
a ``runtime.Unknown`` (k8s.io/apimachinery ``pkg/runtime/generated.proto``: typeMeta=1 {apiVersion=1,
kind=2}, raw=2, contentEncoding=3, contentType=4) whose ``raw`` is the object message. The object is then
read with the tables in :mod:`kplane.apiserver.protobuf_schema` and shaped as Go's JSON encoder would
write the decoded Go struct, so the rest of the server only ever sees JSON objects.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kplane.api.status import StatusError, bad_request
from kplane.apiserver.protobuf_schema import (
    BOOL,
    BYTES,
    INT32,
    INT64,
    INT_OR_STRING,
    LENGTH_KINDS,
    MESSAGES,
    OBJECTS,
    QUANTITY,
    STRING,
    TIME,
    VARINT_KINDS,
    Field,
    Presence,
)

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_WIRE_NAMES = {0: "varint", 1: "fixed64", 2: "bytes", 3: "start group", 4: "end group", 5: "fixed32"}

# Go's time.Time zero value (year 1) as Unix seconds; metav1.Time writes it as an empty message.
_GO_ZERO_TIME = -62135596800

Value = int | bytes


class _Malformed(Exception):
    """Internal: the bytes are not a valid message; becomes a 400 at the public boundary."""


def decode_protobuf_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object, ``apiVersion`` and ``kind`` from the envelope.

    Raises StatusError 400 for malformed bytes and 415 for kinds this server cannot read as protobuf.
    """
    try:
        api_version, kind, raw = _open_envelope(body)
        message = OBJECTS.get((api_version, kind))
        if message is None:
            raise _unsupported_kind(api_version, kind)
        obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
        obj.update(_decode_message(raw, message, ""))
        return obj
    except _Malformed as err:
        raise bad_request(f"unable to decode protobuf body: {err}") from None


def _unsupported_kind(api_version: str, kind: str) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - this server cannot decode {kind} "
        f"({api_version}) from {PROTOBUF_CONTENT_TYPE}; send it as application/json",
    )


def _open_envelope(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, raw)`` of the runtime.Unknown; texts follow upstream's protobuf serializer."""
    if not body:
        raise _Malformed("empty data")
    if not body.startswith(MAGIC):
        raise _Malformed("provided data does not appear to be a protobuf message, "
                         f"expected prefix {list(MAGIC)}")
    if len(body) == len(MAGIC):
        raise _Malformed("empty body")
    type_meta, raw = b"", b""
    for number, wire, value in _fields(body[len(MAGIC):], "Unknown"):
        if number == 1:
            type_meta += _expect_bytes(value, wire, "Unknown.typeMeta")
        elif number == 2:
            raw = _expect_bytes(value, wire, "Unknown.raw")
    api_version, kind = "", ""
    for number, wire, value in _fields(type_meta, "TypeMeta"):
        if number == 1:
            api_version = _text(_expect_bytes(value, wire, "TypeMeta.apiVersion"))
        elif number == 2:
            kind = _text(_expect_bytes(value, wire, "TypeMeta.kind"))
    if not kind:
        raise _Malformed(f"Object 'Kind' is missing in envelope (apiVersion {api_version!r})")
    if not api_version:
        raise _Malformed(f"Object 'apiVersion' is missing in envelope (kind {kind!r})")
    return api_version, kind, raw


# --- wire format ----------------------------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise _Malformed("unexpected EOF in varint")
        if shift >= 70:
            raise _Malformed("varint longer than 10 bytes")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos


def _fields(buf: bytes, message: str) -> Iterator[tuple[int, int, Value]]:
    """``(field number, wire type, value)`` for each field on the wire: an int, or the bytes of a
    length-delimited field."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFF_FFFF:
            raise _Malformed(f"{message}: illegal tag {number} (wire type {wire})")
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > len(buf):
                raise _Malformed(f"{message}: unexpected EOF in field {number}")
            yield number, wire, int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == LENGTH:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise _Malformed(f"{message}: field {number} is {size} bytes long but only "
                                 f"{len(buf) - pos} remain")
            yield number, wire, buf[pos:pos + size]
            pos += size
        else:
            raise _Malformed(f"{message}: unsupported wire type {_WIRE_NAMES.get(wire, wire)} "
                             f"for field {number}")


def _expect_bytes(value: Value, wire: int, where: str) -> bytes:
    if not isinstance(value, bytes):
        raise _Malformed(f"wrong wire type {_WIRE_NAMES[wire]} for {where}")
    return value


def _text(data: bytes) -> str:
    """Go keeps invalid UTF-8 in strings but its JSON encoder writes U+FFFD for it; so do we."""
    return data.decode("utf-8", errors="replace")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- messages -------------------------------------------------------------------------------------------


def _decode_message(buf: bytes, message: str, path: str) -> dict[str, Any]:
    """Fields in Go struct order with Go's JSON presence rules; fields not in the table are skipped."""
    table = MESSAGES[message]
    seen: dict[int, list[Value]] = {}
    for number, wire, value in _fields(buf, message):
        field = table.get(number)
        if field is None:
            continue
        _check_wire(field, wire, message, path)
        seen.setdefault(number, []).append(value)
    out: dict[str, Any] = {}
    for number, field in table.items():
        values = seen.get(number, [])
        if field.inline:
            out.update(_decode_message(_join(values), field.kind, path))
            continue
        where = f"{path}.{field.name}" if path else field.name
        present, value = _field_value(field, values, where)
        if present:
            out[field.name] = value
    return out


def _check_wire(field: Field, wire: int, message: str, path: str) -> None:
    if field.map_value is not None or field.kind in LENGTH_KINDS or field.kind in MESSAGES:
        allowed = {LENGTH}
    else:  # varint kinds; repeated ones may also come packed
        allowed = {VARINT, LENGTH} if field.repeated else {VARINT}
    if wire not in allowed:
        where = f"{path}.{field.name}" if path else field.name
        raise _Malformed(f"{message}: wrong wire type {_WIRE_NAMES[wire]} for field {where}")


def _join(values: list[Value]) -> bytes:
    """Repeated occurrences of a singular message merge, which on the wire is concatenation."""
    return b"".join(v for v in values if isinstance(v, bytes))


def _field_value(field: Field, values: list[Value], path: str) -> tuple[bool, Any]:
    """``(written, value)`` for one field as Go's JSON encoder would treat it."""
    if field.map_value is not None:
        entries = _decode_map(values, field.map_value, path)
        return bool(entries), entries
    if field.repeated:
        items = _decode_list(field.kind, values, path)
        return bool(items), items
    if field.kind == TIME:
        stamp = _decode_time(_join(values), path)
        return stamp is not None, stamp
    if not values:
        return field.presence is Presence.ALWAYS, _zero(field.kind)
    value = _decode_single(field.kind, _join(values) if field.kind in MESSAGES else values[-1], path)
    if field.presence is Presence.OMITEMPTY:
        return value != _zero(field.kind), value
    return True, value


def _zero(kind: str) -> Any:
    zeros: dict[str, Any] = {STRING: "", BYTES: "", INT32: 0, INT64: 0, BOOL: False, INT_OR_STRING: 0,
                             QUANTITY: "0"}
    return zeros.get(kind, {})


def _decode_list(kind: str, values: list[Value], path: str) -> list[Any]:
    if kind not in VARINT_KINDS:
        return [_decode_single(kind, v, f"{path}[{i}]") for i, v in enumerate(values)]
    numbers: list[int] = []
    for value in values:
        if isinstance(value, int):
            numbers.append(value)
            continue
        pos = 0
        while pos < len(value):
            number, pos = _read_varint(value, pos)
            numbers.append(number)
    return [_decode_single(kind, n, path) for n in numbers]


def _decode_map(values: list[Value], value_kind: str, path: str) -> dict[str, Any]:
    """map<string, V> is a repeated entry message {key=1, value=2}; a later key wins."""
    out: dict[str, Any] = {}
    for entry in values:
        key, value = "", _zero(value_kind)
        for number, wire, item in _fields(_expect_bytes(entry, LENGTH, path), f"{path} entry"):
            if number == 1:
                key = _text(_expect_bytes(item, wire, f"{path} key"))
            elif number == 2:
                where = f"{path}[{key}]"
                value = _decode_single(value_kind, _expect_bytes(item, wire, where), where)
        out[key] = value
    return out


def _decode_single(kind: str, value: Value, path: str) -> Any:
    if isinstance(value, int):
        if kind == BOOL:
            return value != 0
        return _signed(value, 32 if kind == INT32 else 64)
    if kind == STRING:
        return _text(value)
    if kind == BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind == QUANTITY:
        return _decode_quantity(value, path)
    if kind == INT_OR_STRING:
        return _decode_int_or_string(value, path)
    return _decode_message(value, kind, path)


def _decode_quantity(buf: bytes, path: str) -> str:
    """Quantity {string=1}; the text is passed on as sent, like a JSON body's."""
    text = "0"
    for number, wire, value in _fields(buf, "Quantity"):
        if number == 1:
            text = _text(_expect_bytes(value, wire, f"{path}.string"))
    return text


def _decode_int_or_string(buf: bytes, path: str) -> int | str:
    """IntOrString {type=1 (0 int, 1 string), intVal=2, strVal=3}, written in JSON as the active member."""
    kind, int_val, str_val = 0, 0, ""
    for number, wire, value in _fields(buf, "IntOrString"):
        if number == 3:
            str_val = _text(_expect_bytes(value, wire, f"{path}.strVal"))
        elif number in (1, 2):
            if isinstance(value, bytes):
                raise _Malformed(f"IntOrString: wrong wire type {_WIRE_NAMES[wire]} for {path}")
            if number == 1:
                kind = _signed(value, 64)
            else:
                int_val = _signed(value, 32)
    if kind == 0:
        return int_val
    if kind == 1:
        return str_val
    raise _Malformed(f"impossible IntOrString.Type {kind} at {path}")


def _decode_time(buf: bytes, path: str) -> str | None:
    """meta/v1 Time {seconds=1, nanos=2} as RFC 3339 in UTC; None for Go's zero time.

    Upstream writes the zero time as an empty message and drops nanos when reading (apimachinery
    meta/v1 time_proto.go); its JSON form has seconds only.
    """
    if not buf:
        return None
    seconds = 0
    for number, wire, value in _fields(buf, "Time"):
        if number == 1:
            if isinstance(value, bytes):
                raise _Malformed(f"Time: wrong wire type {_WIRE_NAMES[wire]} for {path}.seconds")
            seconds = _signed(value, 64)
    if seconds == _GO_ZERO_TIME:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _Malformed(f"{path}: time {seconds}s is outside years 1-9999") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
