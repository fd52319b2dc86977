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

**Templates are tenant code.** Two rules keep them from hurting the node (the limits live in
:mod:`caxton.config_agents.template_budget`):

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2
import jinja2.sandbox
from jinja2 import nodes
from markupsafe import soft_str

from caxton.config_agents.hints import did_you_mean
from caxton.config_agents.template_budget import (
    ENV,
    LINEAR_FILTERS,
    MAX_LOOP_ITERATIONS,
    MAX_RENDER_CHARS,
    TemplateBudgetExceeded,
    budget_problems,
    is_linear,
    lone_variable,
)
from caxton.config_agents.template_budget import undeclared as undeclared_variables
from caxton.errors import InvalidArgument, ResourceExhausted, ValidationFailed

TEMPLATE_VARIABLES: Final[frozenset[str]] = frozenset(
    {"request", "memory_context", "conversation", "parameters", "agent"}
)

_VARS_TEXT: Final = ", ".join(sorted(TEMPLATE_VARIABLES))
_BUDGET_FIX: Final = (f"a prompt may be at most {MAX_RENDER_CHARS:,} characters and nested "
                      f"loops may run {MAX_LOOP_ITERATIONS:,} iterations; make the constants "
                      "smaller")


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


def _first_use(ast: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines) if lines else 1


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> _Compiled:
    try:
        ast = ENV.parse(source)
        undeclared = undeclared_variables(ast)
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
    problems = [TemplateProblem(line, message, _BUDGET_FIX, "budget")
                for line, message in budget_problems(ast)]
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
    return _Compiled(ENV.from_string(ast), (), is_linear(ast), lone_variable(ast))


@functools.lru_cache(maxsize=4096)
def _variables_used(source: str) -> frozenset[str]:
    try:
        return frozenset(undeclared_variables(ENV.parse(source)))
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
