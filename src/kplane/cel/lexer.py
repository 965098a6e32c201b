"""The tokens of CEL text, for the few places that read expressions without the engine's parser: the
two-variable comprehension rewrite (:mod:`kplane.cel.twovar`) and kro's expression analysis
(``kplane.graphs.celast``). Groups: ``num``, ``str``, ``id`` and ``op``; leading white space is skipped."""

from __future__ import annotations

import re

TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>0x[0-9a-fA-F]+u?|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+u?)
  | (?P<str>[bB]?[rR]?(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|\.\?|\[\?|[-+*/%!<>?:.,()\[\]{}])
  )""",
    re.VERBOSE | re.DOTALL,
)
