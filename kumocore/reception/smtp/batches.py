"""How one SMTP transaction's recipients become messages (KumoMTA's batches).

After DATA, the transaction is one message holding every recipient. Two policy events may
see it, each only when a handler exists:

* ``smtp_server_data`` may change its data, sender, meta and recipient list
  (``msg:set_recipient { ... }``: alias expansion, legal capture). As in KumoMTA, a list
  it makes longer than ``max_recipients_per_message`` is taken: that limit bounds what
  a client sends, not what the policy decides.
* ``smtp_server_split_transaction`` may group the recipients itself: an array of
  arrays of addresses, one message per inner array. KumoMTA checks neither that an
  address was among the recipients nor that it appears once (its docs call adding
  recipients there possible, though ``smtp_server_data`` is the place): nor does kumocore.

Without an answer from the latter, the listener's ``batch_handling`` decides:
``BifurcateAlways`` (the default) makes one message per recipient, ``BatchByDomain`` one
per domain, compared lowercased as KumoMTA does (``recip.domain().to_lowercase()``); the
groups keep the order of their first recipient (KumoMTA's order is a hash map's).

The common case — no handler, ``BifurcateAlways`` — builds no transaction message and
hands the recipient list on as it is: one batch per recipient costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumocore.mail.message import EnvelopeAddress, Message

if TYPE_CHECKING:
    from kumocore.reception.smtp.session import EsmtpSession
    from kumocore.reception.smtp.session_state import Transaction

#: The recipients of one message made from a transaction: one address (nearly always), or
#: several (a batch).
Batch = EnvelopeAddress | tuple[EnvelopeAddress, ...]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A transaction after its policy events: what its messages are made of."""

    body: bytes
    meta: dict[str, Any]
    #: Whether ``body`` is known CRLF-clean, and known to hold no dot line.
    clean: bool
    no_dot_lines: bool
    batches: Sequence[Batch]


def first_recipient(batch: Batch) -> EnvelopeAddress:
    """The address that names the batch's queue, routes it and goes in its ``for``
    clause (RFC 5321 4.4: exactly one path there, whatever the number of RCPTs)."""
    return batch if isinstance(batch, EnvelopeAddress) else batch[0]


def by_domain(recipients: Sequence[EnvelopeAddress]) -> list[Batch]:
    """``BatchByDomain``: one batch per domain (compared lowercased)."""
    groups: dict[str, list[EnvelopeAddress]] = {}
    for recipient in recipients:
        groups.setdefault(recipient.domain.lower(), []).append(recipient)
    return [group[0] if len(group) == 1 else tuple(group) for group in groups.values()]


def split(recipients: Sequence[EnvelopeAddress], batch_handling: str) -> Sequence[Batch]:
    """The listener's ``batch_handling`` applied to ``recipients``."""
    if batch_handling == "BatchByDomain" and len(recipients) > 1:
        return by_domain(recipients)
    return recipients  # BifurcateAlways: each address is its own batch already


async def prepare(
    session: EsmtpSession, txn: Transaction, body: bytes, clean: bool, no_dot_lines: bool
) -> Prepared:
    """Run ``smtp_server_data`` and ``smtp_server_split_transaction`` (those with a
    handler) on the transaction as one message; the batches to make messages of.
    Rejections and policy errors (a split answer of the wrong shape) go up."""
    batch_handling = session.config.batch_handling
    if not (session.data_event or session.split_event):
        return Prepared(
            body, session.conn_meta, clean, no_dot_lines, split(txn.recipients, batch_handling)
        )
    hooks = session.runtime.hooks
    whole = Message(txn.sender, txn.recipients, body, meta=session.conn_meta, crlf_clean=clean)
    if session.data_event:
        await hooks.smtp_server_data(whole, session.conn_meta)
    chosen = None
    if session.split_event:
        chosen = await hooks.smtp_server_split_transaction(whole, session.conn_meta)
    txn.sender = whole.sender
    data = whole.get_data()
    batches = chosen if chosen is not None else split(whole.recipients, batch_handling)
    # Data the policy replaced was not scanned for dot lines.
    return Prepared(data, whole.meta, whole.crlf_clean, no_dot_lines and data is body, batches)
