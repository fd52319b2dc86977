"""Prompt templates: Jinja2 in a sandbox, checked once, rendered per message.

A template may use exactly these variables (:data:`TEMPLATE_VARIABLES`):

* ``request`` — the message content being answered;
* ``memory_context`` — text recalled from the agent's memory for this request;
* ``conversation`` — earlier turns of this conversation (a list of ``{"role", "content"}``);
* ``parameters`` — the agent's typed ``parameters``;
* ``agent`` — ``{"name", "version", "capabilities", "tools", "memory_scope"}``.

Templates run in :class:`jinja2.sandbox.SandboxedEnvironment` with ``StrictUndefined``: a syntax
error, an unknown filter or a variable outside that list is a validation error (stage 7), and
an undefined attribute at render time raises :class:`TemplateRenderError` instead of rendering
an empty string into the prompt.

Compilation is cached by source text, so thousands of agents sharing a template compile it
once; templates without any Jinja markup render by returning their source.

**Templates are tenant code.** Two rules keep them from hurting the node:

* *Compiling allocates nothing proportional to a template's constants.* Jinja2 folds constant
  expressions while it compiles (``{{ 'x' * 10**9 }}`` would allocate a gigabyte during
  ``agents.validate``). The environment here turns the optimizer off, intercepts ``*``, ``**``
  and ``%`` (so they are never folded, and at render time are size-capped:
  :data:`MAX_RENDER_CHARS`), and finalises output through a context function (so ``Output``
  children are never folded either).
* *Only linear-time templates render on the node's threads.* :func:`is_linear` reads the
  syntax tree: a template made only of text, variables, attribute/item access, conditions,
  comparisons and a short allowlist of filters whose output is linear in their input
  (:data:`LINEAR_FILTERS`) — no loops, calls, macros, ``*``/``**``/``%`` — renders in time
  linear in its inputs, which are bounded by the frame limit. Every other template renders in
  a tenant worker process (:mod:`caxton.tenant`) under a wall-clock and memory limit, where a
  runaway render is killed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2
import jinja2.sandbox
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import soft_str

from caxton.config_agents.hints import did_you_mean
from caxton.errors import InvalidArgument, ResourceExhausted, ValidationFailed

TEMPLATE_VARIABLES: Final[frozenset[str]] = frozenset(
    {"request", "memory_context", "conversation", "parameters", "agent"}
)

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


def _undeclared(ast: nodes.Template) -> set[str]:
    """``jinja2.meta.find_undeclared_variables`` with no constant folding."""
    codegen = _UnfoldedTracking(ast.environment if ast.environment is not None else _ENV)
    codegen.visit(ast)
    return codegen.undeclared_identifiers


@jinja2.pass_context
def _finalize(context: Any, value: Any) -> Any:
    # A context finaliser tells Jinja2's code generator that output cannot be computed at
    # compile time, so constant output expressions are evaluated (capped) at render time.
    return value


_ENV: Final = _BoundedSandbox(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    auto_reload=False,
    optimized=False,
    finalize=_finalize,
)
_VARS_TEXT: Final = ", ".join(sorted(TEMPLATE_VARIABLES))


class TemplateRenderError(InvalidArgument):
    """Rendering a prompt failed (undefined attribute, unsafe access, bad filter argument)."""


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One problem in a template.

    Attributes:
        line: 1-based line *within the template* (add the template's file line to place it).
        message: What is wrong.
        fix: How to fix it.
        kind: ``"syntax"``, ``"undefined_variable"`` or ``"budget"``.
    """

    line: int
    message: str
    fix: str
    kind: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    template: jinja2.Template | None
    problems: tuple[TemplateProblem, ...]
    linear: bool = False
    lone: str | None = None  # the template is exactly ``{{ name }}``


def _lone_variable(ast: nodes.Template) -> str | None:
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


def _fold(node: nodes.Node) -> Any:
    """The value of a constant expression, computed under the render budget (``*``, ``**``
    and ``%`` raise :class:`TemplateBudgetExceeded` *before* allocating); ``_NOT_CONST`` for
    anything that is not made of literals."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        v = _fold(node.node)
        return -v if isinstance(v, (int, float)) else _NOT_CONST
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_fold(i) for i in node.items]
        return _NOT_CONST if any(i is _NOT_CONST for i in items) else items
    if isinstance(node, (nodes.Mul, nodes.Pow, nodes.Mod)):
        left, right = _fold(node.left), _fold(node.right)
        if left is _NOT_CONST or right is _NOT_CONST:
            return _NOT_CONST
        try:
            return _ENV.call_binop(None, node.operator, left, right)
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
    args = [_fold(a) for a in node.args]
    if not args or not all(isinstance(a, int) for a in args) or len(args) > 3:
        return None
    try:
        return len(range(*args))
    except (ValueError, OverflowError):
        return None


def _budget_problems(ast: nodes.Template) -> list[TemplateProblem]:
    """What in a template would run past the render budget whatever the message: constant
    ``*``/``**``/``%`` results, huge constant filter widths, nested constant loops."""
    problems: list[TemplateProblem] = []
    fix = (f"a prompt may be at most {MAX_RENDER_CHARS:,} characters and nested loops may "
           f"run {MAX_LOOP_ITERATIONS:,} iterations; make the constants smaller")
    for node in ast.find_all((nodes.Mul, nodes.Pow, nodes.Mod)):
        try:
            _fold(node)
        except TemplateBudgetExceeded as exc:
            problems.append(TemplateProblem(node.lineno, f"template over budget: {exc}", fix,
                                            "budget"))
    for flt in ast.find_all(nodes.Filter):
        if flt.name in _WIDTH_FILTERS and flt.args:
            width = _fold(flt.args[0])
            if isinstance(width, int) and width > MAX_RENDER_CHARS:
                problems.append(TemplateProblem(
                    flt.lineno, f"template over budget: '{flt.name}({width})' asks for more "
                    f"than {MAX_RENDER_CHARS:,} characters", fix, "budget"))

    def loops(node: nodes.Node, product: int) -> None:
        for child in node.iter_child_nodes():
            inner = product
            if isinstance(child, nodes.For):
                n = _range_length(child.iter)
                if n is not None:
                    inner = product * max(n, 1)
                    if inner > MAX_LOOP_ITERATIONS and product <= MAX_LOOP_ITERATIONS:
                        problems.append(TemplateProblem(
                            child.lineno, f"template over budget: nested loops over constant "
                            f"ranges run {inner:,} iterations", fix, "budget"))
            loops(child, inner)

    loops(ast, 1)
    return problems


def _first_use(ast: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines) if lines else 1


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> _Compiled:
    try:
        ast = _ENV.parse(source)
        undeclared = _undeclared(ast)
    except jinja2.TemplateAssertionError as exc:  # unknown filter/test, found by code generation
        return _Compiled(None, (TemplateProblem(
            exc.lineno or 1, f"template error: {exc.message}",
            "use only Jinja2's built-in filters and tests (e.g. upper, default, join, length)",
            "syntax"),))
    except jinja2.TemplateSyntaxError as exc:
        return _Compiled(None, (TemplateProblem(
            exc.lineno or 1, f"template syntax error: {exc.message}",
            "fix the Jinja2 markup: {{ variable }}, {% if %}…{% endif %}, {% for %}…{% endfor %}",
            "syntax"),))
    problems: list[TemplateProblem] = _budget_problems(ast)
    for name in sorted(undeclared - TEMPLATE_VARIABLES):
        hint = did_you_mean(name, TEMPLATE_VARIABLES)
        problems.append(TemplateProblem(
            _first_use(ast, name),
            f"unknown template variable '{name}'",
            (hint + " " if hint else "") + f"templates may use only: {_VARS_TEXT}",
            "undefined_variable",
        ))
    if problems:
        return _Compiled(None, tuple(sorted(problems, key=lambda p: p.line)))
    return _Compiled(_ENV.from_string(ast), (), is_linear(ast), _lone_variable(ast))


@functools.lru_cache(maxsize=4096)
def _variables_used(source: str) -> frozenset[str]:
    try:
        return frozenset(_undeclared(_ENV.parse(source)))
    except jinja2.TemplateError:
        return frozenset()


def check_template(source: str) -> tuple[TemplateProblem, ...]:
    """Return every problem in a template (empty when it compiles and uses known variables).

    Args:
        source: Template text.

    Returns:
        Problems, by line.
    """
    return _compile(source).problems


class PromptTemplate:
    """A checked, compiled prompt template: compile once, render many.

    Args:
        source: Template text.
        field: Which field it came from (for error messages).

    Raises:
        ValidationFailed: The template has a syntax error or uses an unknown variable.
    """

    __slots__ = ("_constant", "_lone", "_template", "field", "linear", "source", "variables")

    def __init__(self, source: str, *, field: str = "user_prompt_template") -> None:
        compiled = _compile(source)
        if compiled.template is None:
            raise ValidationFailed(
                f"{field}: " + "; ".join(f"line {p.line}: {p.message}" for p in compiled.problems),
                details=[{"field": field, "line": p.line, "message": p.message, "fix": p.fix}
                         for p in compiled.problems],
            )
        self.source = source
        self.field = field
        self._template = compiled.template
        self._constant = "{" not in source
        self._lone = compiled.lone
        self.linear = self._constant or compiled.linear
        """Whether it renders in time linear in its inputs (so it may render inline)."""
        self.variables = _variables_used(source)
        """The template variables it references."""

    def render(self, variables: Mapping[str, Any]) -> str:
        """Render with the given variables (the five of :data:`TEMPLATE_VARIABLES`).

        Args:
            variables: Values by name; names outside the allowed set are ignored by templates
                because validation refused templates that use them.

        Returns:
            The rendered prompt.

        Raises:
            TemplateRenderError: An undefined attribute/key was used, a sandbox rule was broken,
                or a filter failed.
        """
        if self._constant:
            return self.source
        lone = self._lone
        if lone is not None and lone in variables:  # ``{{ name }}``: what Jinja2 would print
            value = variables[lone]
            out = value if type(value) is str else soft_str(value)
            if len(out) > MAX_RENDER_CHARS:
                raise ResourceExhausted(
                    f"{self.field}: the rendered prompt has {len(out):,} characters (the "
                    f"limit is {MAX_RENDER_CHARS:,}); send a smaller request",
                    details=[{"field": self.field, "reason": "render_budget",
                              "chars": len(out)}])
            return out
        try:
            out = self._template.render(variables)
        except TemplateBudgetExceeded as exc:
            raise ResourceExhausted(
                f"{self.field}: {exc}; a prompt may be at most {MAX_RENDER_CHARS:,} characters",
                details=[{"field": self.field, "reason": "render_budget"}]) from exc
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(
                f"{self.field}: rendering failed: {exc}",
                details=[{"field": self.field, "error": type(exc).__name__, "message": str(exc)}],
            ) from exc
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateRenderError(
                f"{self.field}: rendering failed: {type(exc).__name__}: {exc}",
                details=[{"field": self.field, "error": type(exc).__name__, "message": str(exc)}],
            ) from exc
        if len(out) > MAX_RENDER_CHARS:
            raise ResourceExhausted(
                f"{self.field}: the rendered prompt has {len(out):,} characters (the limit is "
                f"{MAX_RENDER_CHARS:,}); send a smaller request or trim the template",
                details=[{"field": self.field, "reason": "render_budget", "chars": len(out)}])
        return out

    def __repr__(self) -> str:
        return f"PromptTemplate(field={self.field!r}, source={self.source[:40]!r})"


class AgentPrompts:
    """An agent's two prompt templates with its static variables (``agent``, ``parameters``) bound.

    Args:
        system_prompt: System prompt template text.
        user_prompt_template: User prompt template text.
        agent: The ``agent`` variable.
        parameters: The ``parameters`` variable.

    Raises:
        ValidationFailed: Either template is invalid.
    """

    __slots__ = ("_static", "linear", "system", "user", "uses_memory")

    def __init__(
        self,
        system_prompt: str,
        user_prompt_template: str,
        *,
        agent: Mapping[str, Any],
        parameters: Mapping[str, Any],
    ) -> None:
        self.system = PromptTemplate(system_prompt, field="system_prompt")
        self.user = PromptTemplate(user_prompt_template, field="user_prompt_template")
        self._static = {"agent": dict(agent), "parameters": dict(parameters)}
        self.linear = self.system.linear and self.user.linear
        """Both templates are linear-time: they render inline, not in a tenant worker."""
        self.uses_memory = "memory_context" in self.system.variables | self.user.variables
        """A template references ``memory_context`` (so a message recalls memory)."""

    def variables(self, request: Any, memory_context: str = "",
                  conversation: Sequence[Any] = ()) -> dict[str, Any]:
        """The variables one message renders with.

        Args:
            request: The message content.
            memory_context: Recalled memory text.
            conversation: Earlier turns.

        Returns:
            The five variables of :data:`TEMPLATE_VARIABLES`.
        """
        return {**self._static, "request": request, "memory_context": memory_context,
                "conversation": conversation}

    _vars = variables

    def sources(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """``((system source, field), (user source, field))``, for a worker to render."""
        return (self.system.source, self.system.field), (self.user.source, self.user.field)

    def render_both(self, variables: Mapping[str, Any]) -> tuple[str, str]:
        """Render ``(system, user)`` here, on the calling thread (for linear templates).

        Raises:
            TemplateRenderError: Rendering failed.
            ResourceExhausted: A prompt went past :data:`MAX_RENDER_CHARS`.
        """
        return self.system.render(variables), self.user.render(variables)

    def render_user(
        self, request: Any, memory_context: str = "", conversation: Sequence[Any] = ()
    ) -> str:
        """Render the user prompt for one message.

        Args:
            request: The message content.
            memory_context: Recalled memory text.
            conversation: Earlier turns.

        Returns:
            The prompt.

        Raises:
            TemplateRenderError: Rendering failed.
        """
        return self.user.render(self._vars(request, memory_context, conversation))

    def render_system(
        self, request: Any = "", memory_context: str = "", conversation: Sequence[Any] = ()
    ) -> str:
        """Render the system prompt (usually constant, so this is cheap).

        Args:
            request: The message content.
            memory_context: Recalled memory text.
            conversation: Earlier turns.

        Returns:
            The system prompt.

        Raises:
            TemplateRenderError: Rendering failed.
        """
        return self.system.render(self._vars(request, memory_context, conversation))


__all__ = [
    "LINEAR_FILTERS",
    "MAX_RENDER_CHARS",
    "TEMPLATE_VARIABLES",
    "AgentPrompts",
    "PromptTemplate",
    "TemplateBudgetExceeded",
    "TemplateProblem",
    "TemplateRenderError",
    "check_template",
    "is_linear",
]
