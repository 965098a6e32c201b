"""CEL for kplane: one adapter over the engine (:mod:`kplane.cel.engine`) plus the Kubernetes libraries."""

from kplane.cel.engine import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    UINT,
    CelError,
    CelType,
    Program,
    compile,  # noqa: A004 - the adapter mirrors the engine API it wraps
    list_of,
    map_of,
)

__all__ = [
    "BOOL",
    "BYTES",
    "DOUBLE",
    "DURATION",
    "DYN",
    "INT",
    "NULL",
    "STRING",
    "TIMESTAMP",
    "UINT",
    "CelError",
    "CelType",
    "Program",
    "compile",
    "list_of",
    "map_of",
]
