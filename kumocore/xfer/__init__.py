"""Moving queued messages to another node, as KumoMTA's ``xfer`` does.

Owns the transfer of messages between nodes: the wire format and transfer queue names
(:mod:`.wire`), the queue placement a message carries while in transfer
(:mod:`.queue_info`), the sending side — the transfer queue's delivery (:mod:`.send`),
the admin endpoints ``/api/admin/xfer/v1`` and ``/api/admin/xfer/cancel/v1``
(:mod:`.admin`), ``kumo.xfer.*`` (:mod:`.policy`), ``kumocore xfer`` / ``xfer-cancel``
(:mod:`.cli`) — and the receiving side, ``POST /api/xfer/inject/v1`` (:mod:`.receive`,
:mod:`.repeats`). It does not own the queues, spool or logs it moves messages through.
"""
