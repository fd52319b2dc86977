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
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from caxton.config_agents.hints import did_you_mean
from caxton.errors import InvalidArgument, ValidationFailed

TEMPLATE_VARIABLES: Final[frozenset[str]] = frozenset(
    {"request", "memory_context", "conversation", "parameters", "agent"}
)

_ENV: Final = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    auto_reload=False,
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
        kind: ``"syntax"`` or ``"undefined_variable"``.
    """

    line: int
    message: str
    fix: str
    kind: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    template: jinja2.Template | None
    problems: tuple[TemplateProblem, ...]


def _first_use(ast: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines) if lines else 1


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> _Compiled:
    try:
        ast = _ENV.parse(source)
        undeclared = meta.find_undeclared_variables(ast)
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
    problems: list[TemplateProblem] = []
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
    return _Compiled(_ENV.from_string(ast), ())


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

    __slots__ = ("_constant", "_template", "field", "source")

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
        try:
            return self._template.render(variables)
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

    __slots__ = ("_static", "system", "user")

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

    def _vars(self, request: Any, memory_context: str, conversation: Sequence[Any]) -> dict[str, Any]:
        return {**self._static, "request": request, "memory_context": memory_context,
                "conversation": conversation}

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
    "TEMPLATE_VARIABLES",
    "AgentPrompts",
    "PromptTemplate",
    "TemplateProblem",
    "TemplateRenderError",
    "check_template",
]
