"""Walking PromQL expressions parsed by promql-parser: the selectors, ranges, calls and comparisons in them.

Shared by the alert-rule tests (thresholds must come from exporter/core/thresholds.py) and the dashboard lint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser as pp

COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def parse(expr: str) -> Any:
    return pp.parse(expr)


def children(node: Any) -> list[Any]:
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [n for n in (node.expr, node.param) if n is not None]
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, pp.SubqueryExpr | pp.ParenExpr | pp.UnaryExpr):
        return [node.expr]
    return []


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every node, depth first, with its ancestors (nearest last)."""
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def number(node: Any) -> float | None:
    """The value of a number literal, also through parentheses and a unary minus."""
    if isinstance(node, pp.NumberLiteral):
        return float(node.val)
    if isinstance(node, pp.ParenExpr):
        return number(node.expr)
    if isinstance(node, pp.UnaryExpr):
        inner = number(node.expr)
        return None if inner is None else -inner
    return None


def comparisons(expr: str) -> list[tuple[str, float]]:
    """(operator, number) for every comparison of a series with a number, as `series OP number`."""
    found = []
    for node, _ in walk(parse(expr)):
        if isinstance(node, pp.BinaryExpr) and str(node.op) in COMPARISONS:
            op = str(node.op)
            right, left = number(node.rhs), number(node.lhs)
            if right is not None:
                found.append((op, right))
            elif left is not None:
                found.append((FLIPPED[op], left))
    return found


def ranges(expr: str) -> list[float]:
    """Seconds of every range selector and subquery range."""
    return [node.range.total_seconds() for node, _ in walk(parse(expr))
            if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr)]


def calls(expr: str, name: str) -> list[Any]:
    return [node for node, _ in walk(parse(expr)) if isinstance(node, pp.Call) and node.func.name == name]


def selectors(node: Any) -> list[Any]:
    return [n for n, _ in walk(node) if isinstance(n, pp.VectorSelector)]


def matchers(selector: Any) -> dict[str, tuple[str, str]]:
    """{label: (operator, value)} of a vector selector."""
    symbols = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
    return {m.name: (symbols[str(m.op)], m.value) for m in selector.matchers.matchers}


def is_matrix(node: Any) -> bool:
    return isinstance(node, pp.MatrixSelector)


def call_name(node: Any) -> str | None:
    return node.func.name if isinstance(node, pp.Call) else None


def is_selector(node: Any) -> bool:
    return isinstance(node, pp.VectorSelector)
