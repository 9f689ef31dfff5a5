"""Finds the metric names a PromQL expression references (no full parser needed).

Removes string literals, label matchers, range/subquery brackets, grouping label lists
and Grafana variables, then keeps the identifiers that are not functions, keywords,
aggregation operators or numbers.
"""

import re

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "atan2", "inf", "nan", "start", "end",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
IDENT = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr):
    """Every metric (or recording rule) name referenced by `expr`."""
    s = expr
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', s)  # string literals
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\$\{[^}]*\}|\$[a-zA-Z_]\w*", " ", s)  # Grafana variables
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    # Grouping / matching label lists: by (a, b), without(...), on(...), group_left(...)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    # `label_values(metric, label)` (Grafana): drop the label argument.
    s = re.sub(r"\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)", r" \1 ", s)
    names = set()
    for m in IDENT.finditer(s):
        word = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):  # function or aggregation call
            continue
        if word.lower() in KEYWORDS or word in AGGREGATIONS:
            continue
        names.add(word)
    return names


def base_name(name):
    """Family name of a histogram/summary series name."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def exported_names(metrics_text):
    """Series names and family names in a Prometheus text exposition."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            parts = line.split()
            if len(parts) >= 3:
                names.add(parts[2])
        elif line and not line.startswith("#"):
            m = IDENT.match(line)
            if m:
                names.add(m.group(0))
    return names
