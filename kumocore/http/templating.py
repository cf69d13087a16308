"""Templates of one inject request, in KumoMTA's dialect (MiniJinja).

The ``minijinja`` package is the Python binding of the Rust engine KumoMTA uses, so a
template behaves the same in both: lenient undefined variables, auto-escaping in HTML
bodies (templates whose name ends in ``.html``), the trailing newline of a template
dropped. ``fuel`` bounds the work one render may do, so a template cannot keep a worker
busy forever. All templates are compiled once per request; a syntax error there is a
:class:`TemplateFailure` (the handler answers ``422``). Rendering happens per recipient,
and its errors fail only that recipient.

Variables for a recipient, later ones winning: the request's ``substitutions``, then
``email``, ``name`` (when given) and ``to_header`` (``"Name" <email>``, encoded), then the
recipient's own ``substitutions``.

Substitution values are handed over frozen (:func:`kumocore.http.frozen.freeze`). The
``minijinja`` binding passes Python dicts and lists into the template as the Python objects
themselves, and a template may call their methods: ``{{ l.extend(l) }}`` in a loop doubles
a list per iteration for one unit of fuel. Frozen values are ``dict``/``list`` subclasses
whose mutating methods raise, and every method that returns a container returns a frozen
one, so no template can reach a mutable Python object. Scalars are native MiniJinja values
already. A rendered template longer than ``max_rendered_size`` characters fails its
recipient, naming the limit. (Fuel does not count string sizes either: a template that
doubles a string in a ``namespace`` grows it exponentially before any output exists; only
authorised clients can send templates, and that remains an engine limitation.)

The ``Static`` dialect uses the text as is. ``Handlebars`` is not supported (``422``).
"""

from __future__ import annotations

import email.utils
from typing import Any

import minijinja

from kumocore.http.inject_schema import InjectRecipient, InjectRequest
from kumocore.logs.response_normalize import normalize_smtp_response

#: Upper bound on the operations of one render (a few MB of output in practice).
TEMPLATE_FUEL = 5_000_000


class TemplateFailure(ValueError):
    """A template could not be compiled or rendered; the text says where and why."""


class Templates:
    """The compiled templates of one request, looked up by name."""

    def __init__(self, dialect: str, max_rendered_size: int = 20 * 1024 * 1024) -> None:
        if dialect == "Handlebars":
            raise TemplateFailure("template_dialect 'Handlebars' is not supported by kumocore")
        self.max_rendered_size = max_rendered_size
        self.static = dialect == "Static"
        self._sources: dict[str, str] = {}
        self._env = minijinja.Environment(debug=False, fuel=TEMPLATE_FUEL)
        # KumoMTA's template engine has this filter too ({{ response | normalize_smtp_response }}).
        self._env.add_filter("normalize_smtp_response", normalize_smtp_response)

    def add(self, name: str, source: str) -> None:
        """Compile ``source``; names ending in ``.html`` auto-escape substitutions."""
        self._sources[name] = source
        if self.static:
            return
        try:
            self._env.add_template(name, source)
        except minijinja.TemplateError as exc:
            raise TemplateFailure(_message(exc)) from None

    def render(self, name: str, context: dict[str, Any]) -> str:
        if self.static:
            return self._sources[name]
        try:
            text = str(self._env.render_template(name, **context))
        except minijinja.TemplateError as exc:
            raise TemplateFailure(_message(exc)) from None
        if len(text) > self.max_rendered_size:
            raise TemplateFailure(
                f"template {name!r} rendered to {len(text)} characters, over the limit of "
                f"{self.max_rendered_size} (max_rendered_size)")
        return text


def template_context(request: InjectRequest, recipient: InjectRecipient) -> dict[str, Any]:
    """The variables for ``recipient`` (see the module docstring); the substitutions were
    frozen when the request was parsed."""
    context = dict(request.substitutions)
    context["email"] = recipient.email
    if recipient.name is not None:
        context["name"] = recipient.name
    context["to_header"] = email.utils.formataddr((recipient.name or "", recipient.email))
    context.update(recipient.substitutions)
    return context


def _message(exc: minijinja.TemplateError) -> str:
    # ``message`` is the reason and position ("... (in text:1)"); str(exc) adds a
    # source excerpt that would only clutter a JSON error.
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0]
