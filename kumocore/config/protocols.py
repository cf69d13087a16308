"""``make_queue_config { protocol = ... }``: how a queue's messages leave, as KumoMTA names it.

KumoMTA's ``protocol`` is an untagged enum told apart by its key: ``{ smtp = {...} }``,
``{ maildir_path = ..., dir_mode = ..., file_mode = ... }``, ``{ custom_lua = {...} }``.
Each key maps to a parser in :data:`PROTOCOLS`; a table whose key has no parser is refused
at load ("KumoMTA's protocol 'xfer' is not supported by kumocore yet") instead of being
delivered over SMTP as if it were absent.

Extension point: another module adds a protocol with
``register_protocol("custom_lua", parse)`` where ``parse(table, path)`` returns a
subclass of :class:`DeliveryProtocol` whose :meth:`~DeliveryProtocol.connect` opens a
connection; its ``suffix`` ends the ready queue name ``source->site@<suffix>`` (KumoMTA's
``lua:<constructor>``) and the site is the queue's routing domain (else its domain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kumocore.config.conv import Path, check_keys
from kumocore.config.converters import integer
from kumocore.config.lua_options import LuaProtocol, lua_options
from kumocore.dns.mx import MxTarget, parse_mx_list_entry
from kumocore.errors import ConfigError


@dataclass(frozen=True)
class DeliveryProtocol:
    """A parsed ``protocol`` table.

    ``name`` is KumoMTA's metrics protocol name (``smtp_client``, ``maildir``, ``lua``);
    ``suffix`` the ready-queue suffix (``smtp_client``, ``maildir:/var/mail``);
    ``log_name`` what Delivery records say in ``delivery_protocol``.
    """

    name: str
    suffix: str
    log_name: str
    table: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.table)

    async def connect(self, ready: Any) -> Any:
        """A connection for the ready queue ``ready`` (a protocol other than SMTP).

        It must offer what :class:`~kumocore.delivery.client.SmtpClientConnection` does
        for the queue: ``async send(sender, recipient, data) -> Response`` (never raising),
        ``async close()``, and the attributes ``closed``, ``failure``, ``peer``,
        ``source_address`` and ``session`` (a :class:`~kumocore.delivery.tls.SessionInfo`
        naming the protocol for the log record).
        """
        raise NotImplementedError(f"protocol {self.name!r} has no connections")


@dataclass(frozen=True)
class SmtpProtocol(DeliveryProtocol):
    """SMTP to the routing domain's MX hosts, or to an explicit ``mx_list``."""

    mx_list: tuple[MxTarget, ...] = ()
    treat_mx_list_as_secure: bool = False

    @property
    def mx_list_site_name(self) -> str:
        """KumoMTA's site name for an mx_list: ``mx_list:`` + the entries' labels."""
        return "mx_list:" + ",".join(target.label for target in self.mx_list)


def site_without_mx(protocol: DeliveryProtocol | None, destination: str) -> str | None:
    """The site name a queue's ``protocol`` gives by itself, as KumoMTA names it: an
    explicit ``mx_list``'s (``mx_list:...``), or ``destination`` for a protocol that does
    not deliver to MX hosts (maildir, custom_lua...). None for SMTP to the destination's
    MX hosts (``None`` is that default), whose site their MX set names."""
    if protocol is None:
        return None
    if isinstance(protocol, SmtpProtocol):
        return protocol.mx_list_site_name if protocol.mx_list else None
    return destination


@dataclass(frozen=True)
class MaildirProtocol(DeliveryProtocol):
    """Write each message into a maildir (``tmp/`` then ``new/``)."""

    path: str = ""
    dir_mode: int | None = None
    file_mode: int | None = None


@dataclass(frozen=True)
class CustomLuaProtocol(DeliveryProtocol):
    """Delivered by a sender the policy's constructor makes (:mod:`kumocore.delivery.custom_lua`:
    log hooks are queues of this kind)."""

    options: LuaProtocol = field(default_factory=lambda: LuaProtocol(""))


ProtocolParser = Callable[[Mapping[str, Any], Path], DeliveryProtocol]
PROTOCOLS: dict[str, ProtocolParser] = {}


def register_protocol(key: str, parser: ProtocolParser) -> None:
    """Accept ``protocol = { <key> = ... }`` tables, parsed by ``parser``."""
    PROTOCOLS[key] = parser


SMTP_DEFAULT = SmtpProtocol(name="smtp_client", suffix="smtp_client", log_name="ESMTP")


def parse_protocol(value: Any, path: Path) -> DeliveryProtocol:
    """The protocol a ``protocol`` table describes; ConfigError for anything else."""
    if not isinstance(value, Mapping) or not value:
        raise path.invalid("expected a table like { smtp = { mx_list = {...} } }", value)
    for key in value:
        parser = PROTOCOLS.get(str(key))
        if parser is not None:
            return parser(value, path)
    names = ", ".join(repr(str(k)) for k in value)
    raise ConfigError(
        f"KumoMTA's protocol {names} is not supported by kumocore yet "
        f"({path.key!r} in {path.function}); supported: {', '.join(sorted(PROTOCOLS))}"
    )


def _parse_smtp(table: Mapping[str, Any], path: Path) -> DeliveryProtocol:
    check_keys(table, ("smtp",), path)
    smtp_path = path.child("smtp")
    smtp = table["smtp"]
    if not isinstance(smtp, Mapping) and smtp not in ([], ()):
        raise smtp_path.invalid("expected a table", smtp)
    smtp = smtp or {}
    check_keys(smtp, ("mx_list", "treat_mx_list_as_secure"), smtp_path)
    entries = smtp.get("mx_list") or []
    if not isinstance(entries, list | tuple):
        raise smtp_path.child("mx_list").invalid("expected a list", entries)
    targets = []
    for index, entry in enumerate(entries, 1):
        where = smtp_path.child("mx_list").item(index)
        try:
            targets.append(parse_mx_list_entry(entry))
        except ValueError as exc:
            raise where.invalid(str(exc), entry) from None
    secure = smtp.get("treat_mx_list_as_secure", False)
    if not isinstance(secure, bool):
        raise smtp_path.child("treat_mx_list_as_secure").invalid("expected true or false", secure)
    return SmtpProtocol(
        name="smtp_client",
        suffix="smtp_client",
        log_name="ESMTP",
        table=dict(table),
        mx_list=tuple(targets),
        treat_mx_list_as_secure=secure,
    )


_MODE = integer(0, 0o7777)


def _parse_maildir(table: Mapping[str, Any], path: Path) -> DeliveryProtocol:
    check_keys(table, ("maildir_path", "dir_mode", "file_mode"), path)
    maildir = table["maildir_path"]
    if not isinstance(maildir, str) or not maildir:
        raise path.child("maildir_path").invalid("expected a directory name", maildir)
    if "{{" in maildir or "{%" in maildir:
        from kumocore.delivery.maildir_template import check_template

        try:
            check_template(maildir)
        except ValueError as exc:
            raise path.child("maildir_path").invalid(str(exc), maildir) from None
    modes = {
        key: _MODE.load(table[key], path.child(key)) if table.get(key) is not None else None
        for key in ("dir_mode", "file_mode")
    }
    return MaildirProtocol(
        name="maildir",
        suffix=f"maildir:{maildir}",
        log_name="Maildir",
        table=dict(table),
        path=maildir,
        dir_mode=modes["dir_mode"],
        file_mode=modes["file_mode"],
    )


def _parse_custom_lua(table: Mapping[str, Any], path: Path) -> DeliveryProtocol:
    check_keys(table, ("custom_lua",), path)
    options = lua_options(table["custom_lua"])
    return CustomLuaProtocol(name="lua", suffix=f"lua:{options.constructor}", log_name="Lua",
                             table=dict(table), options=options)  # fmt: skip


register_protocol("smtp", _parse_smtp)
register_protocol("maildir_path", _parse_maildir)
register_protocol("custom_lua", _parse_custom_lua)
