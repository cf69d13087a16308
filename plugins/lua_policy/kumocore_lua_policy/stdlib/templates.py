"""``kumo.string.eval_template(NAME, SOURCE, CONTEXT, OPT_DIALECT)``: render one template;
and ``kumo.string.normalize_smtp_response(TEXT)``, also a filter of those templates.

The engine is the one kumocore's HTTP inject API uses (:mod:`kumocore.http.templating`,
MiniJinja as in KumoMTA), so a template reads the same in a policy as in an inject request.
``NAME`` is never opened: its ending picks the escaping, as in KumoMTA (``.html``:
HTML entities, ``.json``: JSON strings, others: none). ``CONTEXT`` is the table of
variables (``nil`` for none). ``OPT_DIALECT`` is ``'Jinja'`` (the default) or
``'Static'`` (the source is returned as is); ``'Handlebars'`` is refused, kumocore has no
Handlebars engine.

``normalize_smtp_response`` is :mod:`kumocore.logs.response_normalize`'s, used by the
template filter of the same name (``{{ response | normalize_smtp_response }}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore import ConfigError
from kumocore.http.templating import Templates
from kumocore.logs.response_normalize import normalize_smtp_response

DIALECTS = ("Jinja", "Static", "Handlebars")


def eval_template(name: Any, source: Any, context: Any = None, dialect: Any = None) -> str:
    """``source`` rendered with the variables of ``context``; ``name`` (never opened)
    picks the escaping: ``.html`` HTML, ``.json`` JSON. ``dialect``: ``Jinja`` (default)
    or ``Static``."""
    if not isinstance(name, str) or not isinstance(source, str):
        raise ConfigError("kumo.string.eval_template: NAME and SOURCE must be strings")
    dialect = "Jinja" if dialect is None else dialect
    if dialect not in DIALECTS:
        raise ConfigError(f"kumo.string.eval_template: unknown template dialect {dialect!r}, "
                          f"expected one of {', '.join(DIALECTS)}")
    if dialect == "Handlebars":
        raise ConfigError("kumo.string.eval_template: the 'Handlebars' dialect is not "
                          "supported by kumocore yet")
    if context is None or context == []:  # nil, or an empty Lua table
        context = {}
    if not isinstance(context, Mapping):
        raise ConfigError("kumo.string.eval_template: CONTEXT must be a table of variables, "
                          f"got {context!r}")
    templates = Templates(dialect)
    templates.add(name, source)
    return templates.render(name, {str(key): value for key, value in context.items()})


def normalize(text: Any) -> str:
    """``text`` with its per-message parts replaced by ``{hash}``, ``{uuid}``,
    ``{ipaddr}``, ``{email}``, ``{base64}``, ``{timestamp}``, ``{duration}``, to group
    similar responses. Needs the word list ``/usr/share/dict/words``."""
    if not isinstance(text, str):
        raise ConfigError("kumo.string.normalize_smtp_response: TEXT must be a string, "
                          f"got {text!r}")
    return normalize_smtp_response(text)


def template_functions() -> dict[str, Callable[..., Any]]:
    return {"string.eval_template": eval_template, "string.normalize_smtp_response": normalize}
