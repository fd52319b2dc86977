"""The limits that keep a prompt template from hurting the node (see ``templates``).

* :data:`ENV` — Jinja2's sandbox with no compile-time constant folding (the optimizer is off,
  including in :func:`undeclared`, and output goes through a context finaliser) and with
  ``*``, ``**`` and ``%`` size-capped at render time (:class:`TemplateBudgetExceeded`);
* :func:`is_linear` — whether a template renders in time linear in its inputs (so it may
  render inline, on the node's thread);
* :func:`budget_problems` — what validation refuses whatever the message: constant results
  past the render budget, huge constant filter widths, nested loops over constant ranges.
"""

from __future__ import annotations

import re
from typing import Any, Final

import jinja2
import jinja2.sandbox
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEnvironment

MAX_RENDER_CHARS: Final = 1_000_000
"""Largest prompt (and largest ``*``/``%`` result inside one) a template may produce."""

MAX_POW_BITS: Final = 4096
"""Largest integer ``**`` may produce, in bits."""

LINEAR_FILTERS: Final[frozenset[str]] = frozenset({
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "int", "items", "join", "last", "length", "list", "lower", "reverse", "round", "safe",
    "sort", "string", "sum", "tojson", "trim", "unique", "upper",
})
"""Filters whose cost and output are linear (or n log n) in their input, whatever their
arguments: a template using only these (and no loops or calls) may render inline."""

# Syntax nodes a linear template may contain (see is_linear).
_LINEAR_NODES: Final = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.CondExpr, nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.And, nodes.Or, nodes.Not,
    nodes.Compare, nodes.Operand, nodes.Concat, nodes.Add, nodes.Sub, nodes.Div,
    nodes.FloorDiv, nodes.Neg, nodes.Pos, nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair,
    nodes.Filter, nodes.Test, nodes.Keyword,
)
_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?")


class TemplateBudgetExceeded(jinja2.sandbox.SecurityError):
    """A ``*``, ``**`` or ``%`` in a template would produce more than the render budget."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with no compile-time folding and size-capped ``*``, ``**``, ``%``."""

    intercepted_binops = frozenset({"*", "**", "%"})
    intercepted_unops = frozenset()

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if _size(seq) and isinstance(n, int) and _size(seq) * n > MAX_RENDER_CHARS:
                    raise TemplateBudgetExceeded(
                        f"'*' would build {_size(seq) * n:,} items (the limit is "
                        f"{MAX_RENDER_CHARS:,})")
            return left * right
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and (
                    max(abs(left), 2).bit_length() * right > MAX_POW_BITS):
                raise TemplateBudgetExceeded(
                    f"'**' would build an integer of about {abs(left).bit_length() * right:,} "
                    f"bits (the limit is {MAX_POW_BITS:,})")
            return left**right
        if isinstance(left, str):  # printf-style formatting: cap widths and precisions
            for m in _FORMAT_WIDTH.finditer(left):
                if any(g and int(g) > MAX_RENDER_CHARS // 100 for g in m.groups()):
                    raise TemplateBudgetExceeded(
                        f"'%' format {m.group(0)!r} asks for more than "
                        f"{MAX_RENDER_CHARS // 100:,} characters")
        return left % right


class _UnfoldedTracking(meta.TrackingCodeGenerator):
    """``jinja2.meta``'s variable tracker without the optimizer (which folds constants)."""

    def __init__(self, environment: jinja2.Environment) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>",
                               optimized=False)
        self.undeclared_identifiers: set[str] = set()


def undeclared(ast: nodes.Template) -> set[str]:
    """``jinja2.meta.find_undeclared_variables`` with no constant folding."""
    codegen = _UnfoldedTracking(ast.environment if ast.environment is not None else ENV)
    codegen.visit(ast)
    return codegen.undeclared_identifiers


@jinja2.pass_context
def _finalize(context: Any, value: Any) -> Any:
    # A context finaliser tells Jinja2's code generator that output cannot be computed at
    # compile time, so constant output expressions are evaluated (capped) at render time.
    return value


ENV: Final = _BoundedSandbox(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    auto_reload=False,
    optimized=False,
    finalize=_finalize,
)


def lone_variable(ast: nodes.Template) -> str | None:
    """``name`` when the template is exactly ``{{ name }}`` (rendered without Jinja2)."""
    if len(ast.body) == 1 and isinstance(ast.body[0], nodes.Output):
        (only,) = ast.body[0].nodes if len(ast.body[0].nodes) == 1 else (None,)
        if isinstance(only, nodes.Name) and only.ctx == "load":
            return str(only.name)
    return None


def is_linear(ast: nodes.Template) -> bool:
    """Whether a parsed template renders in time linear in its inputs (see the module doc).

    Args:
        ast: The parsed template.

    Returns:
        True when every node is of a linear kind and every filter is in
        :data:`LINEAR_FILTERS`.
    """
    for node in ast.find_all(nodes.Node):
        if not isinstance(node, _LINEAR_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in LINEAR_FILTERS:
            return False
    return True


MAX_LOOP_ITERATIONS: Final = 10_000_000
"""Most iterations nested loops over constant ``range()`` s may take (checked at validation)."""

_WIDTH_FILTERS: Final = frozenset({"center", "indent", "wordwrap", "truncate"})
_NOT_CONST: Final = object()


def fold(node: nodes.Node) -> Any:
    """The value of a constant expression, computed under the render budget (``*``, ``**``
    and ``%`` raise :class:`TemplateBudgetExceeded` *before* allocating); ``_NOT_CONST`` for
    anything that is not made of literals."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        v = fold(node.node)
        return -v if isinstance(v, (int, float)) else _NOT_CONST
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [fold(i) for i in node.items]
        return _NOT_CONST if any(i is _NOT_CONST for i in items) else items
    if isinstance(node, (nodes.Mul, nodes.Pow, nodes.Mod)):
        left, right = fold(node.left), fold(node.right)
        if left is _NOT_CONST or right is _NOT_CONST:
            return _NOT_CONST
        try:
            return ENV.call_binop(None, node.operator, left, right)
        except TemplateBudgetExceeded:
            raise
        except Exception:
            return _NOT_CONST
    return _NOT_CONST


def _range_length(node: nodes.Node) -> int | None:
    """How many items ``range(<literals>)`` yields, or None when it is not that."""
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name)
            and node.node.name == "range" and not node.kwargs):
        return None
    args = [fold(a) for a in node.args]
    if not args or not all(isinstance(a, int) for a in args) or len(args) > 3:
        return None
    try:
        return len(range(*args))
    except (ValueError, OverflowError):
        return None


def budget_problems(ast: nodes.Template) -> list[tuple[int, str]]:
    """What in a template would run past the render budget whatever the message: constant
    ``*``/``**``/``%`` results, huge constant filter widths, nested constant loops."""
    problems: list[tuple[int, str]] = []
    for node in ast.find_all((nodes.Mul, nodes.Pow, nodes.Mod)):
        try:
            fold(node)
        except TemplateBudgetExceeded as exc:
            problems.append((node.lineno, f"template over budget: {exc}"))
    for flt in ast.find_all(nodes.Filter):
        if flt.name in _WIDTH_FILTERS and flt.args:
            width = fold(flt.args[0])
            if isinstance(width, int) and width > MAX_RENDER_CHARS:
                problems.append((flt.lineno, f"template over budget: '{flt.name}({width})' "
                                 f"asks for more than {MAX_RENDER_CHARS:,} characters"))

    def loops(node: nodes.Node, product: int) -> None:
        for child in node.iter_child_nodes():
            inner = product
            if isinstance(child, nodes.For):
                n = _range_length(child.iter)
                if n is not None:
                    inner = product * max(n, 1)
                    if inner > MAX_LOOP_ITERATIONS and product <= MAX_LOOP_ITERATIONS:
                        problems.append((child.lineno, f"template over budget: nested loops "
                                         f"over constant ranges run {inner:,} iterations"))
            loops(child, inner)

    loops(ast, 1)
    return problems


__all__ = ["ENV", "LINEAR_FILTERS", "MAX_LOOP_ITERATIONS", "MAX_POW_BITS", "MAX_RENDER_CHARS",
           "TemplateBudgetExceeded", "budget_problems", "fold", "is_linear", "lone_variable",
           "undeclared"]
