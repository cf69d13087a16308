"""The hook contract between kumocore and every plugin (built-in, third-party, policy).

Grammar (prefix ``kumo_``; a Lua policy's event name is the hook name without it):

=================  ============================  =======================================
kind               shape                         how it is called
=================  ============================  =======================================
lifecycle          ``kumo_init``/``kumo_shutdown`` every implementation, in order
provider           ``kumo_register_<things>``    every implementation; results flattened
lookup             ``kumo_get_<thing>``          in order until the first non-None result
policy event       ``kumo_<subsystem>_<event>``  every implementation, in order; an
                                                 implementation refuses by raising
                                                 :class:`kumocore.Rejection`
=================  ============================  =======================================

Order: the operator's policy (Lua or Python) runs first, third-party plugins next, and
built-in defaults last (they are ``trylast``).

Several handlers of one event. Between plugins (pluggy implementations) the table above
applies, except for the events in :data:`UNTIL_A_VALUE`, KumoMTA's ``Multiple`` events
whose answer is unused: their implementations run in order until one returns something
other than None. Inside one Lua policy, ``kumo.on`` keeps only the last handler of an event,
except for KumoMTA's ``Multiple`` events (``pre_init``, ``validate_config``,
``get_queue_config``, ``get_acl_definition``, ``should_enqueue_log_record``,
``throttle_insert_ready_queue``, ``requeue_message``): all their handlers run in
registration order until one returns a value — a handler without ``return`` lets the next
one run, ``return nil`` stops them, as KumoMTA's ``CallbackSignature::call`` does. The policy
then answers its last handler's first value (None for events whose answer is unused), so
other plugins' implementations still run after a Lua ``return nil``.

Any implementation may be ``async def``: :mod:`kumocore.policy.hookcall` awaits it. Wrapper
implementations (``wrapper=True``/``hookwrapper=True``) cannot wrap coroutines and are
refused when the plugin is registered.

Nobody calls the plugin manager's hook relay directly: use the typed facade
:class:`kumocore.policy.hooks.Hooks` (only :mod:`kumocore.policy.hookcall` talks to pluggy).

The provider hooks (``kumo_register_*``) are declared in :mod:`kumocore.hookspecs_providers`
and imported here; the markers live in the leaf :mod:`kumocore.hookmarks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kumocore.hookmarks import PROJECT as PROJECT
from kumocore.hookmarks import hookimpl as hookimpl
from kumocore.hookmarks import hookspec as hookspec

# The providers (policy functions, loaders, the config epoch, the backends) are declared
# in their own module and are part of this contract: pluggy reads every hookspec found
# here, so they are imported into it.
from kumocore.hookspecs_providers import PolicyLoader as PolicyLoader
from kumocore.hookspecs_providers import (
    kumo_register_config_epoch as kumo_register_config_epoch,
)
from kumocore.hookspecs_providers import (
    kumo_register_config_epoch_bump as kumo_register_config_epoch_bump,
)
from kumocore.hookspecs_providers import kumo_register_log_sinks as kumo_register_log_sinks
from kumocore.hookspecs_providers import (
    kumo_register_policy_functions as kumo_register_policy_functions,
)
from kumocore.hookspecs_providers import (
    kumo_register_policy_loaders as kumo_register_policy_loaders,
)
from kumocore.hookspecs_providers import kumo_register_spool_kinds as kumo_register_spool_kinds
from kumocore.hookspecs_providers import (
    kumo_register_throttle_stores as kumo_register_throttle_stores,
)

if TYPE_CHECKING:
    from kumocore.auth_info import AclAuthInfo
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        ListenerDomain,
        QueueConfig,
    )
    from kumocore.http.acl import AccessControlList
    from kumocore.mail.message import EnvelopeAddress, Message
    from kumocore.mail.response import Response
    from kumocore.policy.kumo_api import Kumo

#: Connection metadata as KumoMTA exposes it to policy: ``received_from``,
#: ``received_via``, ``hostname``, ``ehlo_domain``, ``authn_id``, ``tls_*`` ... A live dict;
#: the SMTP server's also carries the session's AuthInfo (:mod:`kumocore.conn_meta`).
ConnMeta = dict[str, Any]

#: KumoMTA's ``Multiple`` events whose answer is unused: their implementations run in order
#: until one returns something other than None (KumoMTA: until a handler returns a value),
#: where other events of their kind run every implementation.
UNTIL_A_VALUE = frozenset({
    "kumo_pre_init", "kumo_validate_config", "kumo_throttle_insert_ready_queue",
    "kumo_requeue_message",
})

# --------------------------------------------------------------------- lifecycle


@hookspec
def kumo_init(kumo: Kumo) -> None:
    """Configure the server: define spools, logs, listeners, sources and pools.

    Called once at start-up, before anything listens. ``kumo`` is the same API object a
    Lua policy gets from ``require 'kumo'`` (``kumo.define_spool(name=..., ...)``).

    Lua: ``kumo.on('init', function() ... end)``. All implementations run.
    """


@hookspec
def kumo_pre_init(kumo: Kumo) -> None:
    """Runs once before ``init``: helper modules build up optional features here.

    Several handlers: implementations (and a Lua policy's handlers, in registration
    order) run until one returns a value (see :data:`UNTIL_A_VALUE`).
    Lua: ``kumo.on('pre_init', function() end)`` (KumoMTA's event).
    """


@hookspec
def kumo_validate_config() -> None:
    """``kumocore validate`` only, after ``init``: check the configuration more deeply.

    Report problems with ``kumo.validation_failed()``; validation then fails (exit 1).
    Several handlers: as ``pre_init``, run until one returns a value.
    Lua: ``kumo.on('validate_config', function() end)`` (KumoMTA's event).
    """


@hookspec
def kumo_shutdown() -> None:
    """The server is stopping: flush and close what you own. All implementations run.

    Lua: ``kumo.on('shutdown', function() end)`` (a kumocore addition; KumoMTA has none).
    """


@hookspec
def kumo_shutdown_logging() -> None:
    """The node is stopping: its listeners are closed and its queues stopped, and the log
    sinks are about to be flushed and closed. Close what feeds your own loggers here —
    typically the ``kumo.mpsc`` queues a ``kumo.spawn_task`` logger drains — so those
    tasks see the end of their input and finish.

    Called once per node (once per worker with ``--workers``), before ``shutdown``. It is
    bounded (:data:`kumocore.policy.hooks.SHUTDOWN_LOGGING_TIMEOUT` seconds): a handler
    still running then is cancelled and the stop goes on; an error is logged and changes
    nothing, as in KumoMTA.
    Lua: ``kumo.on('shutdown_logging', function() q:close() end)`` (KumoMTA's event).
    """


# --------------------------------------------------------------------- SMTP events


@hookspec
def kumo_smtp_server_connection_accepted(conn_meta: ConnMeta) -> None:
    """A client connected. Raise :class:`Rejection` to refuse it (421 closes).

    Lua: ``kumo.on('smtp_server_connection_accepted', function(conn_meta) end)``.
    """


@hookspec(firstresult=True)
def kumo_smtp_server_get_dynamic_parameters(
    listener: str, conn_meta: ConnMeta
) -> Mapping[str, Any] | None:
    """A client connected: listener parameters to use for this connection instead of the
    listener's own. ``listener`` is the address the client reached (``"10.0.0.1:25"``).

    Called before ``smtp_server_connection_accepted``, after a PROXY header was read, and
    again after a successful ``XCLIENT``. Return a table of ``kumo.start_esmtp_listener``
    options (``hostname``, ``banner``, ``relay_hosts``, ``meta``, ``peer``, ``via``...);
    each one given replaces the listener's (after its ``peer``/``via`` blocks), ``meta``
    is merged, and the table's own ``peer`` then ``via`` block matching the connection is
    applied last. None keeps the listener's parameters. Options that belong to the socket
    or to the whole listener (``listen``, ``max_connections``...) cannot be given. A
    :class:`Rejection` refuses the connection; an error or a bad table closes it with
    ``421 4.3.0``. The first implementation answering non-None decides; without any
    implementation the event costs nothing.
    Lua: ``kumo.on('smtp_server_get_dynamic_parameters', function(listener, conn_meta)
    return { via = { ['10.0.0.1'] = { hostname = 'mx.example.com' } } } end)``.
    """


@hookspec
def kumo_smtp_server_ehlo(
    domain: str, conn_meta: ConnMeta, extensions: list[str]
) -> list[str] | None:
    """The client said EHLO/HELO ``domain``. Raise :class:`Rejection` to refuse.

    ``extensions`` lists the ESMTP extensions the EHLO reply will advertise
    (``"PIPELINING"``, ``"SIZE 20971520"``, ``"STARTTLS"``...). Return a list to advertise
    that instead (the first implementation returning non-None decides); the server's
    behaviour does not change with what is advertised.
    Lua: ``kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
    table.insert(extensions, 'X-SOMETHING'); return extensions end)``.
    """


@hookspec(firstresult=True)
def kumo_smtp_server_auth_plain(
    authz: str, authc: str, password: str, conn_meta: ConnMeta
) -> bool | Mapping[str, Any] | AclAuthInfo | None:
    """Validate SMTP AUTH PLAIN/LOGIN credentials. First non-None result wins.

    Return True to accept (``authn_id`` is set to ``authc``, ``authz_id`` to ``authz``),
    False to refuse (535). Or accept by returning an AuthInfo (KumoMTA's table form,
    ``{ identities = {{ identity = ..., context = ... }}, groups = {...} }``, at least one
    identity): the ``SmtpAuthPlainAuthentication`` identity (else the first) becomes
    ``authn_id``, the ``SmtpAuthPlainAuthorization`` one (else ``authn_id``) ``authz_id``,
    and its identities and groups join the session's AuthInfo (``conn_meta:auth_info()``).
    Lua: ``kumo.on('smtp_server_auth_plain', function(authz, authc, password, conn_meta)
    return true end)``.
    """


@hookspec
def kumo_smtp_server_mail_from(sender: EnvelopeAddress, conn_meta: ConnMeta) -> None:
    """MAIL FROM. Raise :class:`Rejection` to refuse.

    Lua: ``kumo.on('smtp_server_mail_from', function(sender, conn_meta) end)``.
    """


@hookspec
def kumo_smtp_server_mail_rcpt_to(recipient: EnvelopeAddress, conn_meta: ConnMeta) -> None:
    """RCPT TO, after the relay check passed. Raise :class:`Rejection` to refuse.

    Lua: ``kumo.on('smtp_server_mail_rcpt_to', function(recipient, conn_meta) end)``.
    """


@hookspec
def kumo_smtp_server_message_received(message: Message, conn_meta: ConnMeta) -> None:
    """A message (one per recipient, or per batch) was received over SMTP, before it is
    spooled.

    Set meta (``tenant``, ``campaign``, ``queue``), add headers, DKIM-sign. Raise
    :class:`Rejection` to refuse it; any other error refuses it with 421 4.3.0.
    Lua: ``kumo.on('smtp_server_message_received', function(msg, conn_meta) end)``.
    """


@hookspec
def kumo_smtp_server_message_deferred_inject(message: Message, conn_meta: ConnMeta) -> None:
    """A message a ``deferred_queue = true`` listener accepted (and answered 250 to) is
    taken from the ``deferred_smtp_inject.kumomta.internal`` queue: do here what
    ``smtp_server_message_received`` would have done (DKIM-sign; set ``tenant``,
    ``campaign``, ``queue``). Its ``queue`` meta is cleared before the call.

    ``conn_meta`` is a copy of the message's meta; changes to it are not kept. Returning
    re-queues the message by its meta and recipient (``DeferredInjectionRebind``); raise
    :class:`Rejection` with a 5xx to bounce it; a 4xx or any other error is a
    TransientFailure, retried (one-minute base interval, exponential backoff, a week).
    Lua: ``kumo.on('smtp_server_message_deferred_inject', function(msg, conn_meta) end)``.
    """


@hookspec
def kumo_smtp_server_data(message: Message, conn_meta: ConnMeta) -> None:
    """DATA was received, before the per-recipient messages are made and before the reply.

    ``message`` holds the data exactly as sent (no trace headers yet) and every recipient
    of the transaction (``msg:recipient_list()``). Changes to its data, sender, meta and
    recipients (``msg:set_recipient { ... }``: alias expansion, legal capture) apply to the
    messages made from it (``smtp_server_split_transaction``, ``batch_handling``); raise
    :class:`Rejection` to refuse the whole transaction. Runs within
    ``data_processing_timeout``.
    Lua: ``kumo.on('smtp_server_data', function(msg, conn_meta) end)``.
    """


@hookspec(firstresult=True)
def kumo_smtp_server_split_transaction(
    message: Message, conn_meta: ConnMeta
) -> list[list[EnvelopeAddress | str]] | None:
    """How a transaction's recipients become messages, after ``smtp_server_data``.

    ``message`` holds every recipient (``msg:recipient_list()``), the data as sent and
    the meta so far. Return a list of lists of addresses (EnvelopeAddress or strings):
    one message per inner list, its first address naming its queue. None lets the
    listener's ``batch_handling`` decide. Called even for one recipient; the first
    implementation answering non-None decides. An answer of another shape (an inner list
    that is empty, a table keyed by name, an unparsable address) refuses the transaction
    with ``421 4.3.0`` as any policy error does; an empty list makes no message (``550
    5.7.1 relaying not permitted``). Raise :class:`Rejection` to refuse it with its reply.
    Lua: ``kumo.on('smtp_server_split_transaction', function(msg, conn_meta) end)``.
    """


@hookspec(firstresult=True)
def kumo_smtp_server_rewrite_response(
    status: int, response: str, command: str | None, conn_meta: ConnMeta
) -> tuple[int | None, str | None] | None:
    """The listener is about to send ``status`` ``response`` (the text after the code,
    lines separated by ``\n``) answering ``command`` (the verb: ``"EHLO"``, ``"DATA"``...).

    Return ``(status, response)`` to send something else (either may be None to keep it);
    None keeps both. A 421 closes the connection. Errors are logged and change nothing.
    The first implementation answering non-None decides.
    Lua: ``kumo.on('smtp_server_rewrite_response', function(status, response, command,
    conn_meta) return 250, 'fine\n' .. response end)``.
    """


# --------------------------------------------------------------------- HTTP events


@hookspec
def kumo_http_message_generated(message: Message, auth_info: dict[str, Any]) -> None:
    """A message was generated by ``/api/inject/v1``, before it is spooled.

    Raise :class:`Rejection` to fail that recipient (counted in ``fail_count``).
    Lua: ``kumo.on('http_message_generated', function(msg, auth_info) end)``.
    """


@hookspec
def kumo_xfer_message_received(message: Message, auth_info: dict[str, Any]) -> None:
    """A message transferred from another node (``POST /api/xfer/inject/v1``), its
    queue placement restored, before it is spooled and queued here.

    Adjust its meta for this node; raise to refuse it (the sending node keeps it and
    retries). Lua: ``kumo.on('xfer_message_received', function(msg, auth_info) end)``.
    """


@hookspec(firstresult=True)
def kumo_http_server_validate_auth_basic(
    user: str, password: str
) -> bool | Mapping[str, Any] | None:
    """Validate HTTP Basic credentials (of any peer that sends them).

    First non-None result wins; no implementation (or False) means 401. True, or an
    AuthInfo table ``{ identities = {...}, groups = {...} }`` whose identities and groups
    are added to the session's for the access control check, accepts them.
    Lua: ``kumo.on('http_server_validate_auth_basic', function(user, password) end)``.
    """


@hookspec(firstresult=True)
def kumo_http_server_validate_auth_bearer(token: str) -> bool | Mapping[str, Any] | None:
    """Validate an HTTP ``Authorization: Bearer <token>``.

    As ``http_server_validate_auth_basic``: True, or an AuthInfo table whose identities
    and groups the session gets (name the token's owner there: True alone leaves the
    session's identity empty, as in KumoMTA); False or no answer means 401. Without any
    implementation a Bearer header is refused with 400 (unsupported).
    Lua: ``kumo.on('http_server_validate_auth_bearer', function(token) end)``.
    """


@hookspec(firstresult=True)
def kumo_get_acl_definition(resource: str) -> AccessControlList | None:
    """The access control list of ``resource`` (``http_listener/*/api/admin``...), asked
    for each resource name an HTTP request's check walks (docs/http-api.md, "Access
    control").

    Return ``kumo.aaa.make_access_control_list{...}`` (or an ACL map's ``map:get(resource)``),
    or None to leave the resource to the product default map (unless
    ``kumo.aaa.set_fall_back_to_acl_map(false)``). Answers are cached per resource name
    (``kumo.aaa.set_acl_cache_ttl``). Several handlers: first non-None wins; a Lua policy's
    handlers run in registration order until one returns a value (``nil`` included).
    Lua: ``kumo.on('get_acl_definition', function(resource) return map:get(resource) end)``.
    """


# --------------------------------------------------------------------- lookups


@hookspec(firstresult=True)
def kumo_get_listener_domain(
    domain: str, listener: str, conn_meta: ConnMeta
) -> ListenerDomain | None:
    """Relay/OOB/ARF settings for ``domain`` on the listener at ``listener`` (its address).

    Asked at RCPT for the recipient's and the sender's domain. The listener's own
    ``domains`` table is consulted when every implementation returns None.
    Lua: ``kumo.on('get_listener_domain', function(domain, listener, conn_meta)
    return kumo.make_listener_domain{...} end)``.
    """


@hookspec(firstresult=True)
def kumo_get_queue_config(
    domain: str, tenant: str | None, campaign: str | None, routing_domain: str | None
) -> QueueConfig | None:
    """Queue settings (``egress_pool``, ``max_age``, ``retry_interval``...) for a queue.

    Resolved at reception, before the message is acknowledged. First non-None wins; a Lua
    policy's several handlers run in registration order until one returns a value: without
    ``return`` the next one is asked, ``return nil`` ends the policy's answer (None).
    Lua: ``kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
    return kumo.make_queue_config{...} end)``.
    """


@hookspec(firstresult=True)
def kumo_get_egress_pool(pool_name: str) -> EgressPool | None:
    """The pool named ``pool_name``; pools from ``kumo.define_egress_pool`` are the default.

    Routing keeps the answer for the pool's ``ttl`` (60 s unless set), as KumoMTA does:
    asked once per name and ``ttl``, not per message; None is not kept.

    Lua: ``kumo.on('get_egress_pool', function(name) return kumo.make_egress_pool{...} end)``.
    """


@hookspec(firstresult=True)
def kumo_get_egress_source(source_name: str) -> EgressSource | None:
    """The source named ``source_name``; ``kumo.define_egress_source`` is the default.

    Routing keeps the answer for the source's ``ttl`` (60 s unless set), as KumoMTA does:
    asked once per name and ``ttl``, not per message; None is not kept.

    Lua: ``kumo.on('get_egress_source', function(name)
    return kumo.make_egress_source{...} end)``.
    """


@hookspec(firstresult=True)
def kumo_get_egress_path_config(
    domain: str, egress_source: str, site_name: str
) -> EgressPathConfig | None:
    """Traffic shaping for the egress path (``egress_source``, ``site_name``).

    Lua: ``kumo.on('get_egress_path_config', function(domain, egress_source, site_name)
    return kumo.make_egress_path{...} end)``.
    """


# --------------------------------------------------------------------- queues & delivery


@hookspec
def kumo_spool_message_enumerated(message: Message) -> None:
    """A message was read back from the spool at start-up, before it is queued.

    Change its meta (``queue``, ``tenant``...) to queue it elsewhere. An error stops the
    start-up, as in KumoMTA.
    Lua: ``kumo.on('spool_message_enumerated', function(msg) end)``.
    """


@hookspec
def kumo_throttle_insert_ready_queue(message: Message) -> None:
    """A due message is about to move from its scheduled queue into a ready queue.

    Delay it by moving its due time into the future (``throttle:delay_message_if_throttled
    (msg)`` or ``msg:set_due(...)``): it goes back to its scheduled queue, re-timed 0-59 s
    from now as KumoMTA re-times it, and the event is asked again then.
    Several handlers: implementations run in order until one returns something other than
    None; a Lua policy's handlers run in registration order until one returns a value
    (``return nil`` included). Lua: ``kumo.on('throttle_insert_ready_queue',
    function(msg) end)``.
    """


@hookspec
def kumo_requeue_message(
    message: Message, smtp_response: str, insert_context: list[str],
    increment_attempts: bool, delay: float | None,
) -> None:
    """A transient failure, a throttle or an aborted connection is about to put
    ``message`` back in its scheduled queue.

    Change the meta its queue name is made of (``queue``, ``tenant``, ``campaign``,
    ``routing_domain``) to re-bind it: it then moves to that queue, due at once.
    ``smtp_response`` is the response on one line, ``insert_context`` the reasons
    (``['LoggedTransientFailure']`` after a failure; ``[..., 'MessageRateThrottle']``,
    ``[..., 'ThrottledByThrottleInsertReadyQueue']``, ``['DispatcherDrop']``);
    ``increment_attempts`` is true only after a failure; ``delay`` is None (the queue's
    retry schedule) or, for the queue's ``max_message_rate``, the wait in seconds — a Lua
    handler gets a ``kumo.time`` TimeDelta (``delay.seconds``, ``delay.human``) or nil, as
    KumoMTA passes. Several handlers: as ``throttle_insert_ready_queue``, until one
    returns a value. Lua: ``kumo.on('requeue_message', function(msg, smtp_response,
    insert_context, increment_attempts, delay) end)``.
    """


@hookspec
def kumo_rebind_message(message: Message, data: dict[str, str]) -> None:
    """An operator's rebind (``POST /api/admin/rebind/v1`` with ``trigger_rebind_event``,
    ``kumocore rebind --trigger-rebind-event``) reached ``message``, waiting in a matching
    scheduled queue; ``data`` is the request's ``data`` object (a copy per message).

    Decide what the rebind does to the message: set meta (``queue``, ``tenant``,
    ``campaign``, ``routing_domain``), the recipient, headers. ``data`` is *not* merged
    into the meta when this event is asked for. Afterwards the message is re-resolved as
    every rebind does: moved (due now, an ``AdminRebind`` record unless
    ``suppress_logging``) when its queue changed, else left due when it was unless
    ``always_flush``. Runs once per message under the hook timeout; an error (or no
    handler at all) is logged and the message is still re-resolved, as in KumoMTA.
    Lua: ``kumo.on('rebind_message', function(msg, data) msg:set_meta('queue', data.queue)
    end)`` (KumoMTA's event; a policy keeps one handler).
    """


@hookspec(firstresult=True)
def kumo_smtp_client_rewrite_delivery_status(
    response: str, domain: str, tenant: str | None, campaign: str | None,
    routing_domain: str | None,
) -> int | None:
    """A destination refused a message (``response`` on one line, ``"450 4.2.2 full"``).

    Return another SMTP status code to handle it as that (e.g. 500 to bounce instead of
    retrying); the logged response then says it was rewritten. None keeps the code.
    Lua: ``kumo.on('smtp_client_rewrite_delivery_status', function(response, domain,
    tenant, campaign, routing_domain) return 500 end)``.
    """


# --------------------------------------------------------------------- logs & bounces


@hookspec(firstresult=True)
def kumo_classify_bounce(response: Response) -> str | None:
    """Classify a delivery response into a bounce category (``InvalidRecipient``...).

    First non-None wins; ``Uncategorized`` when none answers. Usually configured with
    ``kumo.configure_bounce_classifier``; Lua may also answer with
    ``kumo.on('classify_bounce', function(response) return 'SpamBlock' end)``
    (a kumocore addition).
    """


@hookspec
def kumo_log_disposition(hook_name: str, message: Message, log_record: dict[str, Any]) -> None:
    """A record about ``message`` for the disposition hook ``hook_name``
    (``kumo.configure_log_disposition_hook { name = hook_name }``).

    Called while the message still exists (before one with a final outcome leaves the
    spool), e.g. to send a delivery status notification with
    ``kumo.generate_rfc3464_message`` and ``kumo.inject_message``. All implementations run;
    an error is logged and changes nothing. Lua: KumoMTA's
    ``kumo.on('log_disposition_<hook_name>', function(msg, log_record) end)``.
    """


@hookspec(firstresult=True)
def kumo_should_enqueue_log_record(message: Message, hook_name: str) -> bool | None:
    """Whether a log record should be queued to a log hook named ``hook_name``.

    Several handlers: first non-None wins; a Lua policy's handlers run in registration
    order until one returns a value (``return nil`` ends them: not queued).
    Lua: ``kumo.on('should_enqueue_log_record', function(msg, hook_name) end)``.
    """
