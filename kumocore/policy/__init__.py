"""The policy machinery: plugins, the hook caller, the ``kumo`` module of policies.

Owns building the plugin manager (:mod:`.plugins`), the one place that calls hooks
(:mod:`.hookcall`) and its typed facade (:mod:`.hooks`), the ``kumo`` API assembled from core
and plugins (:mod:`.kumo_api`, :mod:`.policyfn`, :mod:`.builtins`, :mod:`.basic_functions`,
:mod:`.subsystem_functions`, :mod:`.python_loader`, :mod:`.runtime_functions`, custom events,
tasks, secrets), and the policy tools ``kumocore validate`` and ``kumocore explain``. The hook
contract itself is :mod:`kumocore.hookspecs`. It does not own the process that runs a policy
(:mod:`kumocore.node`).
"""
