"""SMTP responses as KumoMTA logs them: code, enhanced code, content, command."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class EnhancedCode:
    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    def to_json(self) -> dict[str, int]:
        return {"class": self.klass, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Response:
    """One SMTP reply. ``content`` excludes the code and the enhanced code."""

    code: int
    content: str
    enhanced_code: EnhancedCode | None = None
    command: str | None = None

    @classmethod
    def parse(cls, code: int, text: str, command: str | None = None) -> Response:
        """Split ``"5.1.1 user unknown"`` into enhanced code and content."""
        text = text.replace("\r", "").replace("\n", " ").strip()
        match = _ENHANCED.match(text)
        enhanced = None
        if match:
            enhanced = EnhancedCode(int(match[1]), int(match[2]), int(match[3]))
            text = text[match.end() :]
        return cls(code=code, content=text, enhanced_code=enhanced, command=command)

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 300

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def to_single_line(self) -> str:
        """The form the bounce classifier matches: ``"550 5.1.1 user unknown"``."""
        enhanced = f"{self.enhanced_code} " if self.enhanced_code else ""
        return f"{self.code} {enhanced}{self.content}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "enhanced_code": self.enhanced_code.to_json() if self.enhanced_code else None,
            "content": self.content,
            "command": self.command,
        }
