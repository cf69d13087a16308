"""The node: the process that runs kumocore and the services it wires together.

Owns the command line (:mod:`.cli`), the server lifecycle (:mod:`.server`: start services in
dependency order, stop them in reverse), the :class:`~kumocore.node.services.Services` built
once at start, the policy runtime (:mod:`.runtime`), ``--workers`` (:mod:`.workers`), the
one event-loop runner (:mod:`.loop`), diagnostics logging, GC tuning, private file modes,
shared timers and stream details, the node's metric state and the service files shipped for
installation, and ``kumocore sink`` (:mod:`.sink`), a stand-in receiving server for trying
a node out. It does not own any step of the data path itself: it starts them.
"""
