"""The plugin contract as the framework reads it: any object with the guide's
methods is a plugin, and this module is the one place that calls it.

The guide (and Karbor, through TaskFlow) calls a hook **by keyword** with the
names ``checkpoint``, ``resource``, ``context`` and ``parameters``, plus the
operation's extras. :func:`call_hook` does exactly that, whatever order the
hook declares its parameters in, and passes only the extras the hook accepts
(a hook with ``**kwargs`` gets them all). A hook the object does not have is a
no-op. What the guide leaves to the framework comes from here, not from a
base class the plugin must inherit: :func:`operation_settings` reads
``retries``, ``retry_delay``, ``timeout`` and ``atomic_prepare`` with their
defaults, :func:`get_operation` and :func:`parameters_schema` ask a plugin that
lacks the optional methods.

The extras Karbor passes are built by :func:`hook_extras`: ``restore``,
``verify`` and ``checkpoint_copy`` are :class:`StatusRecorder` objects whose
``update_resource_status(resource_type, resource_id, status, reason=None)``
calls are collected (picklable, so they travel back from a worker) for the
run record.

A little over 400 lines on purpose: being the one place that reads a plugin
is the point, and the cached signatures, the defaults and the extras are
read together on every hook call.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from protectflow.dag.model import HOOKS, OPERATIONS, Resource
from protectflow.dag.outcomes import StatusUpdate
from protectflow.errors import PluginError

__all__ = [
    "EXTRAS",
    "GUIDE_ARGUMENTS",
    "OperationSettings",
    "StatusRecorder",
    "StatusUpdate",
    "call_hook",
    "get_operation",
    "hook_extras",
    "implemented_hooks",
    "noop_hook",
    "operation_settings",
    "parameters_schema",
    "preflight_problems",
    "supported_types",
]

#: The arguments every hook gets, by these names.
GUIDE_ARGUMENTS = ("checkpoint", "resource", "context", "parameters")

#: Every extra a hook may be given, by name: the guide's ``**kwargs``.
EXTRAS = frozenset((
    "operation_log", "attempt", "new_resources", "target_checkpoint",
    "restore", "verify", "checkpoint_copy",
))

#: The Karbor extra holding the status recorder of each operation that has one.
RECORDER_EXTRA = {"restore": "restore", "verify": "verify", "copy": "checkpoint_copy"}

#: Operations whose hooks get ``new_resources``.
NEW_RESOURCES_OPERATIONS = frozenset(("restore", "verify"))

_ANY_OBJECT: dict[str, Any] = {"type": "object"}


# -- the framework's defaults ----------------------------------------------------


@attrs.frozen
class OperationSettings:
    """What an Operation may set on itself, with the framework's defaults."""

    retries: int = 0
    retry_delay: float = 0.1
    timeout: float | None = None
    atomic_prepare: bool = False


_DEFAULTS = OperationSettings()


def operation_settings(operation: Any) -> OperationSettings:
    """``operation``'s ``retries``, ``retry_delay``, ``timeout`` and
    ``atomic_prepare``, each defaulting when the object does not set it.

    Raises
    ------
    PluginError
        When one is set to a value of the wrong kind (a negative retry
        count, a timeout that is not a number).
    """
    try:
        retries = int(getattr(operation, "retries", _DEFAULTS.retries))
        delay = float(getattr(operation, "retry_delay", _DEFAULTS.retry_delay))
        raw_timeout = getattr(operation, "timeout", None)
        timeout = None if raw_timeout is None else float(raw_timeout)
    except (TypeError, ValueError) as err:
        raise PluginError(f"{type(operation).__qualname__}: retries, retry_delay and timeout "
                          f"must be numbers: {err}", type(operation).__qualname__) from err
    if retries < 0 or delay < 0 or (timeout is not None and timeout < 0):
        raise PluginError(f"{type(operation).__qualname__}: retries ({retries}), retry_delay "
                          f"({delay}) and timeout ({timeout}) may not be negative",
                          type(operation).__qualname__)
    atomic = bool(getattr(operation, "atomic_prepare", False))
    return OperationSettings(retries, delay, timeout, atomic)


def get_operation(plugin: Any, operation: str, resource: Resource) -> Any:
    """The Operation ``plugin`` returns for ``operation`` on ``resource``
    (``get_<operation>_operation``); a plugin without that method gets an
    object with no hooks, which runs as a no-op.

    Raises
    ------
    PluginError
        For an unknown operation name.
    """
    if operation not in OPERATIONS:
        raise PluginError(f"unknown operation {operation!r}; available: {', '.join(OPERATIONS)}")
    getter = getattr(plugin, f"get_{operation}_operation", None)
    return _NoHooks() if getter is None else getter(resource)


class _NoHooks:
    """The Operation of a plugin that does not implement an operation."""


def supported_types(plugin: Any) -> tuple[str, ...]:
    """The resource types ``plugin`` handles (``get_supported_resources_types``).

    Raises
    ------
    PluginError
        When the plugin does not say, or says it with something that is not
        a list of strings.
    """
    getter = getattr(plugin, "get_supported_resources_types", None)
    name = type(plugin).__qualname__
    if getter is None:
        raise PluginError(f"{name} is no protection plugin: it has no "
                          "get_supported_resources_types()", name)
    types = getter()
    if isinstance(types, str) or not all(isinstance(t, str) for t in types):
        raise PluginError(f"{name}.get_supported_resources_types() returned {types!r}; "
                          "it must return a list of resource type names", name)
    return tuple(types)


def parameters_schema(plugin: Any, operation: str, resource_type: str) -> dict[str, Any]:
    """The JSON Schema of ``operation``'s parameters for ``resource_type``:
    ``get_options_schema`` (protect), ``get_restore_schema``,
    ``get_verify_schema``; any object for copy and delete, and for a schema
    method the plugin does not have."""
    method = {"protect": "get_options_schema", "restore": "get_restore_schema",
              "verify": "get_verify_schema"}.get(operation)
    getter = getattr(plugin, method, None) if method else None
    if getter is None:
        return _ANY_OBJECT
    schema: dict[str, Any] = getter(resource_type)
    return schema


def preflight_problems(plugin: Any, operation: str, resource: Resource,
                       parameters: Mapping[str, Any], *, checkpoint: Any = None) -> list[str]:
    """What ``plugin``'s ``preflight`` finds would make ``operation`` fail on
    ``resource`` (not in the Karbor guide: a plugin without one finds nothing).

    Raises
    ------
    PluginError
        When ``preflight`` returns something that is not a list of strings.
    """
    method = getattr(plugin, "preflight", None)
    if method is None:
        return []
    found = method(operation, resource, parameters, checkpoint=checkpoint)
    if isinstance(found, str) or not all(isinstance(p, str) for p in found):
        name = type(plugin).__qualname__
        raise PluginError(f"{name}.preflight() returned {found!r}; it must return a list of "
                          "problems, each a string", name)
    return list(found)


_F = TypeVar("_F", bound=Callable[..., Any])


def noop_hook(method: _F) -> _F:
    """Mark a base class's hook as the no-op it is: :func:`implemented_hooks`
    does not count it, and the compiler may prune its node."""
    method._protectflow_noop = True  # type: ignore[attr-defined]
    return method


def implemented_hooks(operation: Any) -> tuple[str, ...]:
    """The hooks ``operation`` has, in hook order; a hook inherited unchanged
    from :class:`protectflow.plugins.base.Operation` (a no-op) is not counted.
    An operation that names its hooks itself (``declared_hooks``, as a
    ``HookOperation`` built from a table does) has exactly those."""
    declared = getattr(operation, "declared_hooks", None)
    if declared is not None:
        return tuple(h for h in HOOKS if h in declared)
    cls = type(operation)
    out = []
    for hook in HOOKS:
        found = getattr(cls, "on_" + hook, None) or getattr(operation, "on_" + hook, None)
        if found is not None and not getattr(found, "_protectflow_noop", False):
            out.append(hook)
    return tuple(out)


# -- calling a hook ----------------------------------------------------------------


@attrs.frozen
class _Accepts:
    """What a hook's signature takes: its keyword names, whether it has
    ``**kwargs``, and how many leading positional-only parameters it has."""

    names: frozenset[str]
    var_keyword: bool
    positional_only: int
    #: It takes every argument by keyword (``**kwargs``, no positional-only
    #: parameter): it is called with all of them as they are.
    everything: bool


# Weak: a hook made per object (a closure) must not be kept alive by the cache.
# A plain dict of weak references rather than a WeakKeyDictionary: its lookup
# is one C call, and it runs once per hook call.
_signatures: dict[weakref.ref[Any], _Accepts] = {}
_signatures_lock = threading.Lock()


#: Hook name -> its method's name, made once rather than at each call.
_METHODS = {hook: "on_" + hook for hook in (*HOOKS, "failure")}


def _where(operation: Any, hook: str) -> str:
    """``Class.on_hook``, as errors name a hook."""
    return f"{type(operation).__qualname__}.on_{hook}"


def _forget(ref: weakref.ref[Any]) -> None:
    with _signatures_lock:
        _signatures.pop(ref, None)


def _accepts(method: Callable[..., Any], operation: Any, hook: str) -> _Accepts:
    # Keyed by the function, not the bound method: every instance of a class
    # shares it, so the signature is inspected once per class.
    key = getattr(method, "__func__", method)
    try:
        found = _signatures.get(weakref.ref(key))
    except TypeError:  # a callable that takes no weak reference: not cached
        found = None
    if found is not None:
        return found
    where = _where(operation, hook)
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError) as err:
        raise PluginError(f"{where}: cannot read its signature: {err}", where) from err
    names, positional, var_kw = set(), 0, False
    known = set(GUIDE_ARGUMENTS) | EXTRAS
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            var_kw = True
        elif param.kind is param.POSITIONAL_ONLY:
            positional += 1
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            names.add(param.name)
            if param.name not in known and param.default is param.empty:
                raise PluginError(
                    f"{where} requires a parameter {param.name!r} that hooks are not given; "
                    f"hooks get {', '.join(GUIDE_ARGUMENTS)} and the extras "
                    f"{', '.join(sorted(EXTRAS))} by keyword", where)
    if positional > len(GUIDE_ARGUMENTS):
        raise PluginError(f"{where} takes {positional} positional-only parameters; "
                          "hooks are called by keyword", where)
    found = _Accepts(frozenset(names), var_kw, positional, var_kw and not positional)
    with _signatures_lock, contextlib.suppress(TypeError):
        _signatures[weakref.ref(key, _forget)] = found
    return found


def call_hook(
    operation: Any,
    hook: str,
    *,
    checkpoint: Any,
    resource: Resource,
    context: Any,
    parameters: Mapping[str, Any],
    **extras: Any,
) -> Any:
    """Call ``operation``'s ``on_<hook>`` by keyword, as Karbor does.

    ``hook`` is a hook's name (``prepare_begin``, ..., ``complete``) or
    ``failure`` (the plugin's ``on_failure``). The guide's four arguments go
    by their names, so a hook that declares them in another order gets the
    right values; of ``extras`` the hook gets those its signature names (all
    of them if it takes ``**kwargs``). A method the object does not have is a
    no-op: the result is ``None``. The hook's own exceptions propagate.

    Raises
    ------
    PluginError
        When the attribute is not callable, or the hook requires a parameter
        the framework never passes.
    """
    method = getattr(operation, _METHODS.get(hook) or "on_" + hook, None)
    if method is None:
        return None
    if not callable(method):
        where = _where(operation, hook)
        raise PluginError(f"{where} is a {type(method).__name__}, not a method", where)
    try:  # the cache of _accepts, looked at here first: one call less per hook
        accepts = _signatures.get(weakref.ref(getattr(method, "__func__", method)))
    except TypeError:
        accepts = None
    if accepts is None:
        accepts = _accepts(method, operation, hook)
    if accepts.everything:  # the common case, without building anything
        return method(checkpoint=checkpoint, resource=resource, context=context,
                      parameters=parameters, **extras)
    values = {"checkpoint": checkpoint, "resource": resource, "context": context,
              "parameters": parameters}
    # Positional-only parameters cannot be named: they get the guide's
    # arguments in the guide's order.
    args = [values.pop(name) for name in GUIDE_ARGUMENTS[:accepts.positional_only]]
    kwargs = {k: v for k, v in {**values, **extras}.items()
              if accepts.var_keyword or k in accepts.names}
    return method(*args, **kwargs)


# -- the extras ------------------------------------------------------------------


class StatusRecorder:
    """Karbor's ``restore``, ``verify`` and ``checkpoint_copy`` objects: a hook
    reports a resource's status with :meth:`update_resource_status`, and the
    framework collects :attr:`updates` into the run record.

    Small and picklable: a recorder travels to a worker with the call and
    back with the result.
    """

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.updates: list[StatusUpdate] = []

    def update_resource_status(self, resource_type: str, resource_id: str, status: str,
                               reason: str | None = None) -> None:
        """Record ``status`` (and why) for the resource ``resource_type#resource_id``.

        Raises
        ------
        PluginError
            When the type, id or status is not a non-empty string.
        """
        for name, value in (("resource_type", resource_type), ("resource_id", resource_id),
                            ("status", status)):
            if not isinstance(value, str) or not value:
                raise PluginError(f"update_resource_status: {name} must be a non-empty "
                                  f"string, got {value!r}")
        self.updates.append(StatusUpdate(resource_type, resource_id, status,
                                         None if reason is None else str(reason), time.time()))

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Resource key -> its last reported ``status`` and ``reason``."""
        return {u.key: {"status": u.status, "reason": u.reason} for u in self.updates}


def hook_extras(
    operation: str,
    *,
    operation_log: Any,
    attempt: int,
    new_resources: dict[str, Any] | None = None,
    target_checkpoint: Any = None,
) -> tuple[dict[str, Any], StatusRecorder | None]:
    """The extras of one hook call of ``operation``, and its status recorder
    (``None`` for protect and delete, which have none).

    Every hook gets ``operation_log`` and ``attempt``; restore and verify
    hooks ``new_resources`` (a fresh dict when none is given); copy hooks
    ``target_checkpoint``; and as in Karbor, restore hooks ``restore``,
    verify hooks ``verify`` and copy hooks ``checkpoint_copy``.
    """
    extras: dict[str, Any] = {"operation_log": operation_log, "attempt": attempt}
    if operation in NEW_RESOURCES_OPERATIONS:
        extras["new_resources"] = {} if new_resources is None else new_resources
    if target_checkpoint is not None:
        extras["target_checkpoint"] = target_checkpoint
    recorder = None
    if operation in RECORDER_EXTRA:
        recorder = StatusRecorder(operation)
        extras[RECORDER_EXTRA[operation]] = recorder
    return extras, recorder
