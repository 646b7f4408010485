"""Workload classes: ordered CEL rules, first match wins (ARCHITECTURE.md §5).

Rules are compiled and checked before any log is read: a syntax error, an
unknown variable or a rule that does not give a boolean is a ``ConfigError``
naming the rule. A rule within the typed subset that workload rules use
(variables compared with literals of their own CEL type, ``&&``, ``||``, ``!``,
``in [...]``, ``startsWith``, ``endsWith``, ``contains``, ``matches``) runs as one
polars expression over all rows (``vectorise``): a rule over a continuous variable
such as ``etime > 0.05`` costs nanoseconds per row. Any other rule runs in the CEL
interpreter once per distinct tuple of the variables it uses (most operations
repeat the same few tuples), and the answers are mapped back onto the rows.

Values: a missing string is ``""``, a missing number is ``0`` (``err`` is
``-1`` when the operation has no RESULT), a missing flag is ``false``;
``bind_dn`` of a connection opened before the log window is ``"(unknown)"``.

>>> rules = compile_rules([("svc", 'bind_dn.startsWith("uid=svc-")'), ("other", "true")])
>>> import polars as pl
>>> ops = pl.DataFrame({"bind_dn": ["uid=svc-a,dc=x", "", None]})
>>> classify(ops, rules)["workload"].to_list()
['svc', 'other', 'other']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import celpy
import polars as pl
from celpy import celtypes

from .errors import ConfigError

# CEL variable → (operations column it comes from, CEL type, value when missing)
VARIABLES = MappingProxyType({
    "server": ("server", celtypes.StringType, ""),
    "bind_dn": ("bind_dn", celtypes.StringType, "(unknown)"),
    "client_ip": ("client_ip", celtypes.StringType, ""),
    "verb": ("verb", celtypes.StringType, ""),
    "base": ("base", celtypes.StringType, ""),
    "scope": ("scope", celtypes.IntType, 0),
    "fingerprint": ("fingerprint", celtypes.StringType, ""),
    "attrs": ("attrs", celtypes.StringType, ""),
    "err": ("err", celtypes.IntType, -1),
    "etime": ("etime", celtypes.DoubleType, 0.0),
    "nentries": ("nentries", celtypes.IntType, 0),
    "unindexed": ("unindexed", celtypes.BoolType, False),
    "paged": ("paged", celtypes.BoolType, False),
    "tls": ("tls", celtypes.BoolType, False),         # LDAPS, or StartTLS done (a version)
    "conn_duration": ("conn_duration", celtypes.DoubleType, 0.0),
    # live connections only (the exporter, from cn=monitor)
    "ops_initiated": ("ops_initiated", celtypes.IntType, 0),
    "ops_completed": ("ops_completed", celtypes.IntType, 0),
    "ops_pending": ("ops_pending", celtypes.IntType, 0),
})
# What each side knows: operations from the logs, or live connections from cn=monitor.
BATCH_VARIABLES = frozenset(VARIABLES) - {"ops_initiated", "ops_completed", "ops_pending"}
LIVE_VARIABLES = frozenset({"server", "bind_dn", "client_ip", "conn_duration", "tls",
                            "ops_initiated", "ops_completed", "ops_pending"})
UNCLASSIFIED = "unclassified"   # what rows no rule matched are called
ANSWER_CACHE_LIMIT = 1_000_000  # remembered answers per rule and worker process


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    variables: tuple[str, ...]
    line: int | None = None
    program: Any = field(default=None, compare=False, repr=False)
    # the same rule as a polars expression over the variables' columns (None: interpreter)
    expr: pl.Expr | None = field(default=None, compare=False, repr=False)
    # answers by tuple of variable values: one worker classifies many buckets, in which
    # the same bind DNs come back (the CEL interpreter costs ~0.3 ms per evaluation)
    answers: dict[tuple[Any, ...], bool] = field(default_factory=dict, compare=False,
                                                 repr=False)


def compile_rules(rules: list[tuple[str, str]] | list[tuple[str, str, int | None]],
                  origin: str = "workloads", vectorised: bool = True,
                  allowed: frozenset[str] = BATCH_VARIABLES) -> tuple[Rule, ...]:
    """Compile ``(name, expression[, line])`` pairs, checking each as ARCHITECTURE §5 says.

    ``vectorised=False`` keeps every rule in the interpreter (to check both agree).

    Raises:
        ConfigError: naming the rule, its line and the fix.
    """
    env = celpy.Environment()
    compiled = []
    for item in rules:
        name, source = item[0], item[1]
        line = item[2] if len(item) > 2 else None  # type: ignore[misc]
        where = f"{origin}: rule {name!r}" + (f" (line {line})" if line else "")
        try:
            ast = env.compile(source)
        except Exception as e:  # celpy raises its own parse error type
            raise ConfigError(f"{where}: not a valid CEL expression: {source!r}\n{e}") from None
        used = sorted({t.children[0].value for t in ast.find_data("ident")})
        unknown = [v for v in used if v not in allowed]
        if unknown:
            other = [v for v in unknown if v in VARIABLES]
            side = ("live connections (cn=monitor)" if allowed == LIVE_VARIABLES
                    else "operations in the logs")
            known = ", ".join(v for v in VARIABLES if v in allowed)
            what = (f"{', '.join(other)} is not known for {side}" if other
                    else f"unknown variable {', '.join(unknown)}")
            raise ConfigError(f"{where}: {what}; the variables are {known}")
        program = env.program(ast)
        sample = {v: _cel(VARIABLES[v][1], VARIABLES[v][2]) for v in used}
        try:
            result = program.evaluate(sample)
        except Exception as e:  # a type error on neutral values is not proof of a bad rule,
            result = e          # but a function CEL does not have is
        if "undeclared reference" in str(result):
            missing = str(result).split("undeclared reference to ")[1].split(" ")[0]
            raise ConfigError(f"{where}: unknown function {missing}: {source!r} (CEL has "
                              "startsWith, endsWith, contains, matches, size, ...)")
        if isinstance(result, Exception):
            result = celtypes.BoolType(False)
        if not isinstance(result, celtypes.BoolType):
            raise ConfigError(f"{where}: gives {_cel_type_name(result)}, not a boolean: "
                              f"{source!r} (compare it, e.g. `... == \"x\"`)")
        compiled.append(Rule(name, source, tuple(used), line, program,
                             vectorise(ast) if vectorised else None))
    return tuple(compiled)


def classify(ops: pl.DataFrame, rules: tuple[Rule, ...],
             on_evaluate: Callable[[Rule], None] | None = None,
             errors: dict[str, int] | None = None) -> pl.DataFrame:
    """Add a ``workload`` column: the first rule that holds for each row.

    A rule that fails on a row at run time (``int(base) > 3`` on a base that is no
    number) does not hold for it, and the row is counted in ``errors`` under the rule's
    name, so the run can say so.

    Args:
        ops: operations (the columns of ARCHITECTURE.md §3, ``rust/core/src/operations.rs``).
        rules: from ``compile_rules``.
        on_evaluate: called once per rule evaluation (tests count them).
        errors: rows each rule failed on, added to.
    """
    result = pl.Series("workload", [], dtype=pl.String).extend_constant(None, ops.height)
    todo = pl.Series([], dtype=pl.Boolean).extend_constant(True, ops.height)
    for rule in rules:
        if not todo.any():
            break
        columns = [VARIABLES[v][0] for v in rule.variables]
        view = ops.select(
            pl.int_range(pl.len()).alias("_row"),
            *(_column(ops, v) for v in rule.variables),
        ).filter(todo)
        if rule.expr is not None:  # over the variables' columns, as the interpreter sees them
            hit_rows = view.filter(rule.expr)["_row"]
        else:
            hit_rows, failed = _interpreted(rule, view, columns, on_evaluate)
            if failed and errors is not None:
                errors[rule.name] = errors.get(rule.name, 0) + failed
        if hit_rows.len():
            result = result.scatter(hit_rows, rule.name)
            todo = todo.scatter(hit_rows, False)
    return ops.with_columns(result.fill_null(UNCLASSIFIED))


# CEL type of each variable, for the typed subset
_TYPES = MappingProxyType({v: {celtypes.StringType: "string", celtypes.IntType: "int",
                               celtypes.DoubleType: "double", celtypes.BoolType: "bool"}[t]
                           for v, (_, t, _) in VARIABLES.items()})
_COMPARE = MappingProxyType({"relation_eq": "eq", "relation_ne": "ne", "relation_lt": "lt",
                             "relation_le": "le", "relation_gt": "gt", "relation_ge": "ge"})
_METHODS = MappingProxyType({"startsWith": "starts_with", "endsWith": "ends_with",
                             "contains": "contains", "matches": "contains"})


def vectorise(ast: Any) -> pl.Expr | None:
    """The rule as a polars expression over the operations, or None if it leaves the
    typed subset (then the interpreter decides, so no rule changes meaning).

    >>> import celpy
    >>> e = vectorise(celpy.Environment().compile('verb == "SRCH" && etime > 0.05'))
    >>> pl.DataFrame({"verb": ["SRCH", "SRCH", "BIND"], "etime": [0.1, 0.01, 0.1]})\\
    ...     .select(e)["verb"].to_list()
    [True, False, False]
    """
    try:
        typed = _typed(ast)
    except _Unsupported:
        return None
    return typed[0] if typed[1] == "bool" else None


class _Unsupported(Exception):
    pass


def _typed(node: Any) -> tuple[pl.Expr, str]:
    """(expression, CEL type) of a node of celpy's grammar."""
    kind = getattr(node, "data", None)
    children = getattr(node, "children", [])
    if kind in ("expr", "addition", "multiplication", "member", "primary", "paren_expr") \
            and len(children) == 1:
        return _typed(children[0])
    if kind in ("conditionalor", "conditionaland") and len(children) in (1, 2):
        if len(children) == 1:
            return _typed(children[0])
        (a, ta), (b, tb) = _typed(children[0]), _typed(children[1])
        if ta != "bool" or tb != "bool":
            raise _Unsupported(kind)
        return (a | b) if kind == "conditionalor" else (a & b), "bool"
    if kind == "relation" and len(children) == 1:
        return _typed(children[0])
    if kind == "relation" and len(children) == 2:
        op, right = children
        (a, ta) = _typed(op.children[0])
        if op.data == "relation_in":
            values = _literal_list(right, ta)
            return a.is_in(values), "bool"
        (b, tb) = _typed(right)
        if op.data not in _COMPARE or ta != tb or (ta == "bool" and op.data not in (
                "relation_eq", "relation_ne")):
            raise _Unsupported(op.data)   # CEL has no mixed int/double comparison here
        return getattr(a, _COMPARE[op.data])(b), "bool"
    if kind == "unary" and len(children) == 1:
        return _typed(children[0])
    if kind == "unary" and len(children) == 2 and children[0].data == "unary_not":
        inner, t = _typed(children[1])
        if t != "bool":
            raise _Unsupported("!")
        return ~inner, "bool"
    if kind == "member_dot_arg" and len(children) == 3:
        target, method, args = children
        (a, ta) = _typed(target)
        if ta != "string" or str(method) not in _METHODS or len(args.children) != 1:
            raise _Unsupported(str(method))
        (b, tb) = _typed(args.children[0])
        if tb != "string":
            raise _Unsupported(str(method))
        literal = b.meta.output_name()  # a literal's value (set by _literal below)
        if str(method) == "matches":
            try:  # a pattern polars' engine refuses (look-around) stays with the interpreter
                pl.select(pl.lit("").str.contains(literal))
            except pl.exceptions.PolarsError:
                raise _Unsupported("matches") from None
        fn = getattr(a.str, _METHODS[str(method)])
        return (fn(literal, literal=False) if str(method) in ("matches",) else
                fn(literal, literal=True) if str(method) == "contains" else fn(literal)), "bool"
    if kind == "ident" and len(children) == 1 and str(children[0]) in VARIABLES:
        variable = str(children[0])  # its column, as ``_column`` gives it to the rules
        return pl.col(VARIABLES[variable][0]), _TYPES[variable]
    if kind == "literal" and len(children) == 1:
        return _literal(str(children[0]))
    raise _Unsupported(str(kind))


def _literal(token: str) -> tuple[pl.Expr, str]:
    if token in ("true", "false"):
        return pl.lit(token == "true"), "bool"
    if len(token) >= 2 and token[0] == token[-1] == '"' and "\\" not in token:
        value = token[1:-1]
        return pl.lit(value).alias(value), "string"   # the alias carries the value
    if token.lstrip("-").isdigit():
        return pl.lit(int(token), pl.Int64), "int"
    try:
        if "." in token or "e" in token.lower():
            return pl.lit(float(token), pl.Float64), "double"
    except ValueError:
        pass
    raise _Unsupported(token)  # bytes, unsigned, raw or escaped strings, null


def _literal_list(node: Any, kind: str) -> list[Any]:
    while getattr(node, "data", None) in ("addition", "multiplication", "unary", "member",
                                          "primary") and len(node.children) == 1:
        node = node.children[0]
    if getattr(node, "data", None) != "list_lit":
        raise _Unsupported("in")
    items = node.children[0].children if node.children else []
    values = []
    for item in items:
        expr, t = _typed(item)
        if t != kind:
            raise _Unsupported("in")
        values.append(pl.select(expr).item())
    return values


def _interpreted(rule: Rule, view: pl.DataFrame, columns: list[str],
                 on_evaluate: Callable[[Rule], None] | None) -> tuple[pl.Series, int]:
    """The rows of ``view`` the rule holds for, by the CEL interpreter: once per distinct
    tuple of its variables, remembered across calls; and how many rows it failed on."""
    distinct = view.select(columns).unique()
    answers = []
    for values in (distinct.iter_rows() if columns else [()]):
        if values not in rule.answers:
            if on_evaluate:
                on_evaluate(rule)
            if len(rule.answers) >= ANSWER_CACHE_LIMIT:
                rule.answers.clear()
            rule.answers[values] = _evaluate(rule, values)
        answers.append(rule.answers[values])
    if not columns:
        return (view["_row"] if answers[0] else view["_row"].clear(),
                view.height if answers[0] is None else 0)
    matched = view.join(distinct.with_columns(pl.Series("_hit", answers, dtype=pl.Boolean)),
                        on=columns, how="left", nulls_equal=True)
    return matched.filter(pl.col("_hit"))["_row"], int(matched["_hit"].null_count())


def _evaluate(rule: Rule, values: tuple[Any, ...]) -> bool | None:
    """Whether the rule holds for these values; None when it fails on them."""
    activation = {v: _cel(VARIABLES[v][1], x)
                  for v, x in zip(rule.variables, values, strict=True)}
    try:
        out = rule.program.evaluate(activation)
    except Exception:
        return None  # a runtime error (e.g. a bad regex on one value): no match, counted
    if isinstance(out, Exception):  # celpy returns some errors instead of raising them
        return None
    return out is True or (isinstance(out, celtypes.BoolType) and bool(out))


def _column(ops: pl.DataFrame, variable: str) -> pl.Expr:
    column, _, missing = VARIABLES[variable]
    if column not in ops.columns:
        return pl.lit(missing).alias(column)
    if variable == "tls":  # the column holds the TLS version; the variable is whether any
        return pl.col(column).is_not_null().alias(column)
    return pl.col(column).fill_null(missing)


def _cel_type_name(value: Any) -> str:
    for kind, name in ((str, "string"), (bool, "bool"), (int, "int"), (float, "double"),
                       (list, "list"), (dict, "map")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _cel(kind: type, value: Any) -> Any:
    return kind(value)
