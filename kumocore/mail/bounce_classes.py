"""KumoMTA's predefined bounce classes: the names a bounce classifier answers with
(``kumo.configure_bounce_classifier``'s rules; a policy may also define its own).

Core reads them where an answer changes what happens to a message, not only what its
record says: a bare ``452`` / ``552`` to ``RCPT TO`` that a classifier puts in any
predefined class but ``TooManyRecipients`` (or ``Uncategorized``) is not a "too many
recipients" reply (:mod:`kumocore.queue.batch_groups`).
"""

from __future__ import annotations

__all__ = ["PREDEFINED_BOUNCE_CLASSES", "TOO_MANY_RECIPIENTS", "UNCATEGORIZED"]

UNCATEGORIZED = "Uncategorized"
TOO_MANY_RECIPIENTS = "TooManyRecipients"

PREDEFINED_BOUNCE_CLASSES: tuple[str, ...] = (
    "InvalidRecipient", "DNSFailure", "SpamBlock", "SpamContent", "ProhibitedAttachment",
    "RelayDenied", "AutoReply", "TransientFailure", "Subscribe", "Unsubscribe",
    "ChallengeResponse", "BadConfiguration", "BadConnection", "BadDomain", "ContentRelated",
    "InactiveMailbox", "InvalidSender", "MessageExpired", "NoAnswerFromHost", "PolicyRelated",
    "ProtocolErrors", "QuotaIssues", "RelayingIssues", "RoutingErrors", "SpamRelated",
    "VirusRelated", "AuthenticationFailed", TOO_MANY_RECIPIENTS, UNCATEGORIZED,
)  # fmt: skip
