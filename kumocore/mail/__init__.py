"""The mail model: a message and its parts, as policies, spool and log see them.

Owns the :class:`~kumocore.mail.message.Message` (envelope, meta, raw RFC 5322 bytes) and
its methods (:mod:`.message_methods`, MIME view, conformance fixes, per-message scheduling),
the shared body, the header block, envelope addresses, message ids, the scheduled-queue name
and the SMTP :class:`~kumocore.mail.response.Response`. It does not own how a message arrives
(:mod:`kumocore.reception`), where it is stored (:mod:`kumocore.spool`), queued
(:mod:`kumocore.queue`) or delivered (:mod:`kumocore.delivery`): those all use this model.
"""
