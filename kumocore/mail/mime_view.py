"""``msg:parse_mime()`` and ``kumo.mimepart``'s parts: KumoMTA's MimePart object.

A :class:`MimePart` is a handle on one part of a tree (KumoMTA's PartRef): the tree's
root and the path of child indexes leading to the part. Changing a part through any
handle changes the one tree, so after ``structure.text_part.body = '...'``,
``tostring(root)`` shows the new text — and ``tostring`` of any handle gives the whole
tree (the root), as KumoMTA's does.

Fields: ``part.body`` (transfer-decoded; text as a string, binary as bytes; assigning it
re-encodes the part, see :func:`mime_parts.replace_body`), ``part.headers`` (the part's
:class:`HeaderMap`, changes apply to the part), ``part.id`` (the path, ``''`` for the root,
``'1.0'`` for the first child of the second child). Methods: ``append_part``,
``get_simple_structure``, ``rebuild``, ``replace_body``. Python callers also have
``children``, ``content_type``, ``walk()`` and ``to_bytes()``.
"""

from __future__ import annotations

from typing import Any

from kumocore.mail import mime_parts
from kumocore.mail.mime_headers import Header, HeaderMap
from kumocore.mail.mime_tree import MAX_DEPTH, MAX_HEADERS, MAX_PARTS, MimeStructureError, Node
from kumocore.mail.mime_tree import parse as parse_tree
from kumocore.policy.policyfn import lua_type_name

__all__ = [
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_PARTS",
    "Header",
    "HeaderMap",
    "MimePart",
    "MimeStructureError",
    "parse_mime",
]


class MimePart:
    """A handle on one part of a MIME tree."""

    __kumo_fields__ = True  # Lua reads part.body/part.headers and calls part:method()
    __kumo_settable__ = frozenset({"body"})  # and may assign part.body

    def __init__(self, root: Node, path: tuple[int, ...] = ()) -> None:
        self._root = root
        self._path = path

    @classmethod
    def of(cls, node: Node) -> MimePart:
        return cls(node)

    def node(self) -> Node:
        node = self._root
        for index in self._path:
            if index >= len(node.children):
                raise MimeStructureError("failed to resolve PartRef to MimePart")
            node = node.children[index]
        return node

    def _ref(self, path: tuple[int, ...]) -> MimePart:
        return MimePart(self._root, (*self._path, *path))

    @property
    def id(self) -> str:
        return ".".join(map(str, self._path))

    @property
    def headers(self) -> HeaderMap:
        return self.node().headers

    @property
    def body(self) -> str | bytes:
        return self.node().decoded_body()

    @body.setter
    def body(self, content: str | bytes) -> None:
        mime_parts.replace_body(self.node(), _content(content))

    def replace_body(self, content: str | bytes, content_type: str | None = None) -> None:
        mime_parts.replace_body(
            self.node(), _content(content), None if content_type is None else str(content_type)
        )

    def append_part(self, part: MimePart) -> None:
        if not isinstance(part, MimePart):
            raise TypeError("append_part expects a MimePart")
        self.node().children.append(part.node().copy())

    def rebuild(self) -> MimePart:
        """A new, separate tree rebuilt from this handle's whole tree (as KumoMTA does)."""
        return MimePart(mime_parts.rebuild(self._root))

    def get_simple_structure(self) -> dict[str, Any]:
        pointers = mime_parts.structure_pointers(self.node())
        attachments = []
        for path in pointers.attachments:
            part = self._ref(path)
            node = part.node()
            options = mime_parts.attachment_options(node)
            ctype = node.content_type()
            attachments.append(
                {
                    "file_name": None if options is None else options.file_name,
                    "inline": True if options is None else options.inline,
                    "content_id": None if options is None else options.content_id,
                    "content_type": "application/octet-stream" if ctype is None else ctype["value"],
                    "part": part,
                }
            )

        def ref(path: tuple[int, ...] | None) -> MimePart | None:
            return None if path is None else self._ref(path)

        return {
            "text_part": ref(pointers.text_part),
            "html_part": ref(pointers.html_part),
            "amp_html_part": ref(pointers.amp_html_part),
            "header_part": self._ref(pointers.header_part),
            "attachments": attachments,
        }

    @property
    def children(self) -> list[MimePart]:
        return [self._ref((index,)) for index in range(len(self.node().children))]

    @property
    def content_type(self) -> str:
        ctype = self.node().content_type()
        return "text/plain" if ctype is None else ctype["value"].lower()

    def walk(self) -> list[MimePart]:
        return [self, *(part for child in self.children for part in child.walk())]

    def to_bytes(self) -> bytes:
        """The whole tree (from its root) as RFC 5322 bytes."""
        return self._root.to_bytes()

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<MimePart {self.id!r} {self.content_type}>"


def _content(content: Any) -> str | bytes:
    if isinstance(content, str | bytes):
        return content
    raise TypeError(f"a part's body must be a string, got {lua_type_name(content)}")


def parse_mime(data: bytes | str) -> MimePart:
    """The MIME tree of ``data`` (a lenient parse: broken structure is still readable)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return MimePart(parse_tree(data))


# Lua may pass binary (non-UTF-8) content: the Lua plugin's mark for methods taking byte
# strings (kumocore_lua_policy.byte_strings.BYTES_ATTR), set here as core cannot import it.
MimePart.replace_body.__kumo_bytes__ = True  # type: ignore[attr-defined]
