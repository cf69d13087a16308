"""The template engine for ``maildir_path`` (MiniJinja, bounded), apart from the maildir
writer so that loading a queue config can check a template without importing the
message model."""

from __future__ import annotations

from typing import Any

#: Bounds the work of one path render.
FUEL = 100_000


def environment() -> Any:
    import minijinja

    return minijinja.Environment(debug=False, fuel=FUEL)


def check_template(template: str) -> None:
    """Compile ``template`` once at load; ValueError with the engine's reason."""
    import minijinja

    try:
        environment().add_template("maildir_path", template)
    except minijinja.TemplateError as exc:
        raise ValueError(f"invalid template: {exc}") from None
