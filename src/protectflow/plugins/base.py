"""The plugin interfaces, as the Karbor protection plugins guide gives them.

A :class:`ProtectionPlugin` handles one or more resource types and returns, per
operation, an :class:`Operation` with up to four hooks; a hook it does not
implement is a no-op. A :class:`Protectable` discovers resources of one type
and the resources they depend on. A hook receives the checkpoint as a
:class:`HookCheckpoint`. :class:`HookOperation` builds an Operation from one
function per hook it implements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs

from protectflow.dag.model import HOOKS, Resource
from protectflow.plugins.contract import implemented_hooks, noop_hook

if TYPE_CHECKING:  # annotations only: the compiler imports this module, not the bank
    from protectflow.bank import Bank, BankSection

__all__ = [
    "HookArgs",
    "HookCheckpoint",
    "HookFunction",
    "HookOperation",
    "Operation",
    "Protectable",
    "ProtectionPlugin",
    "implemented_hooks",
]

_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_HOOK_NAMES = frozenset(HOOKS)


@runtime_checkable
class HookCheckpoint(Protocol):
    """What a hook may use of the checkpoint it receives (Karbor's API).

    :class:`protectflow.bank.Checkpoint` is one. A hook gets ``None`` instead
    when its run has no checkpoint (``protectflow run`` without a bank).
    """

    @property
    def id(self) -> str:
        """The checkpoint's id: one key segment, unique in its bank."""

    @property
    def bank(self) -> Bank:
        """The bank holding the checkpoint (and the chunks its resources share)."""

    @property
    def bank_section(self) -> BankSection:
        """The section for the whole checkpoint's plugin data."""

    def get_resource_bank_section(self, resource_id: str | Resource, *,
                                  read_only: bool = False) -> BankSection:
        """The section for one resource's data (pass the Resource or its key)."""


class Operation:
    """The hooks of one operation on one resource; each defaults to a no-op.

    Each hook is called as ``hook(checkpoint, resource, context, parameters,
    **kwargs)``; ``kwargs`` holds ``operation_log`` (messages kept in the
    run report), ``attempt`` (1 for the first try) and, for restore and verify,
    ``new_resources``: a dict holding exactly what the hook's ancestors in the
    DAG wrote into theirs, which it may write new resource ids into for its
    parents to read. A hook may return a mapping, kept in the run report as its
    output. A hook may be run again after a crash or a retry: make it
    idempotent.

    ``retries``, ``retry_delay`` (seconds, doubled per attempt) and ``timeout``
    (seconds per attempt, ``None`` for none) are the operation's defaults; the
    command line can override them.
    """

    retries: ClassVar[int] = 0
    retry_delay: ClassVar[float] = 0.1
    timeout: ClassVar[float | None] = None

    #: The work between this resource's ``on_prepare_begin`` and its
    #: ``on_prepare_finish`` only holds within one run (a freeze that a crash
    #: ends): when a resumed run finds the prepare_begin journaled but not the
    #: prepare_finish, it runs prepare_begin and every hook after it again.
    atomic_prepare: ClassVar[bool] = False

    @noop_hook
    def on_prepare_begin(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        """Runs before any hook of this resource's dependents (its children)."""
        return None

    @noop_hook
    def on_prepare_finish(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        """Runs after the prepare hooks of every child are complete."""
        return None

    @noop_hook
    def on_main(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        """The heavy lifting; runs after this resource's prepare hooks."""
        return None

    @noop_hook
    def on_complete(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        """Runs after this resource's main hook and every child's complete hook."""
        return None


@attrs.frozen
class HookArgs:
    """One call of a hook, as a :class:`HookOperation`'s function receives it.

    ``kwargs`` is the hook's own keyword arguments (``operation_log``,
    ``attempt``, ``new_resources``, ``target_checkpoint``, ...).
    """

    hook: str
    checkpoint: HookCheckpoint | None
    resource: Resource
    context: Any
    parameters: dict[str, Any]
    kwargs: dict[str, Any]

    def publish(self, new_id: Any) -> None:
        """Give the resource's parents its new id (a restored copy's path, say)
        through ``new_resources``, when the operation passes one (restore,
        verify)."""
        new_resources = self.kwargs.get("new_resources")
        if new_resources is not None:
            new_resources[self.resource.key] = new_id


#: A hook of a :class:`HookOperation`; what it returns is the hook's output.
HookFunction = Callable[[HookArgs], Any]


class HookOperation(Operation):
    """An Operation built from one function per hook it implements.

    ``hooks`` maps hook names (``prepare_begin``, ``prepare_finish``,
    ``main``, ``complete``) to functions taking a :class:`HookArgs`; the
    hooks it leaves out are no-ops that the compiler leaves out of the DAG
    (:func:`implemented_hooks` sees exactly the hooks given). One function
    may serve several hooks: it finds which one in ``HookArgs.hook``.

    Raises
    ------
    ValueError
        If a key of ``hooks`` is not a hook name.
    """

    def __init__(self, hooks: Mapping[str, HookFunction]) -> None:
        if not _HOOK_NAMES.issuperset(hooks):  # made once per resource per run: kept cheap
            unknown = sorted(set(hooks) - _HOOK_NAMES)
            raise ValueError(f"unknown hooks {', '.join(unknown)}; hooks are "
                             f"{', '.join(HOOKS)}")
        self.hooks = dict(hooks)
        #: What :func:`implemented_hooks` reports: the hooks given, no others.
        self.declared_hooks = frozenset(hooks)

    def _call(self, hook: str, checkpoint: HookCheckpoint | None, resource: Resource,
              context: Any, parameters: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        function = self.hooks.get(hook)
        if function is None:
            return None
        return function(HookArgs(hook, checkpoint, resource, context, parameters, kwargs))

    def on_prepare_begin(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        return self._call("prepare_begin", checkpoint, resource, context, parameters, kwargs)

    def on_prepare_finish(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        return self._call("prepare_finish", checkpoint, resource, context, parameters, kwargs)

    def on_main(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        return self._call("main", checkpoint, resource, context, parameters, kwargs)

    def on_complete(
        self, checkpoint: HookCheckpoint | None, resource: Resource, context: Any,
        parameters: dict[str, Any], **kwargs: Any,
    ) -> Any:
        return self._call("complete", checkpoint, resource, context, parameters, kwargs)


class ProtectionPlugin:
    """Implements the five operations for the resource types it supports."""

    #: The resource types this plugin handles, returned by
    #: :meth:`get_supported_resources_types` unless that is overridden.
    supported_resource_types: ClassVar[Sequence[str]] = ()

    #: A fallback plugin serves a type only when no other installed plugin
    #: claims it, unless a provider names it (the built-in sim plugins are).
    fallback: ClassVar[bool] = False

    # The schemas the ``get_*_schema`` methods return for every resource type,
    # unless they are overridden; any object by default.
    #: The parameters of a protect (:meth:`get_options_schema`).
    options_schema: ClassVar[dict[str, Any]] = _ANY_OBJECT
    #: What a checkpoint keeps about a resource (:meth:`get_saved_info_schema`).
    saved_info_schema: ClassVar[dict[str, Any]] = _ANY_OBJECT
    #: The parameters of a restore (:meth:`get_restore_schema`).
    restore_schema: ClassVar[dict[str, Any]] = _ANY_OBJECT
    #: The parameters of a verify (:meth:`get_verify_schema`).
    verify_schema: ClassVar[dict[str, Any]] = _ANY_OBJECT
    #: The ``extra_info`` fields of a resource that name commands this plugin
    #: runs (an application's ``freeze`` and ``thaw``): a resumed protect runs
    #: them only as the operator's plan gives them, never as a checkpoint's
    #: record alone says (see :mod:`protectflow.operations.resume`).
    command_fields: ClassVar[tuple[str, ...]] = ()

    def get_protect_operation(self, resource: Resource) -> Operation:
        return Operation()

    def get_restore_operation(self, resource: Resource) -> Operation:
        return Operation()

    def get_verify_operation(self, resource: Resource) -> Operation:
        return Operation()

    def get_copy_operation(self, resource: Resource) -> Operation:
        return Operation()

    def get_delete_operation(self, resource: Resource) -> Operation:
        return Operation()

    @classmethod
    def get_supported_resources_types(cls) -> Sequence[str]:
        return tuple(cls.supported_resource_types)

    @classmethod
    def get_options_schema(cls, resource_type: str) -> dict[str, Any]:
        """JSON Schema of the parameters of a protect operation."""
        return cls.options_schema

    @classmethod
    def get_saved_info_schema(cls, resource_type: str) -> dict[str, Any]:
        """JSON Schema of what a checkpoint keeps about a protected resource."""
        return cls.saved_info_schema

    @classmethod
    def get_restore_schema(cls, resource_type: str) -> dict[str, Any]:
        """JSON Schema of the parameters of a restore operation."""
        return cls.restore_schema

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        """What a checkpoint keeps about ``resource``, read from ``metadata_store``."""
        return None

    @classmethod
    def get_verify_schema(cls, resource_type: str) -> dict[str, Any]:
        """JSON Schema of the parameters of a verify operation."""
        return cls.verify_schema

    def on_failure(self, checkpoint: HookCheckpoint | None, resource: Resource,
                   context: Any, parameters: dict[str, Any], **kwargs: Any) -> Any:
        """Undo what a failed or interrupted run left behind (thaw a frozen
        application, remove a temporary snapshot); a no-op by default.

        Not in the Karbor guide: protectflow calls it, after a protect that did
        not succeed, for every resource of the run, with that resource's
        parameters. Fail-fast means a parent's ``on_prepare_finish`` may never
        run after a child's failure; this is where its clean-up goes. It must
        be safe to call when there is nothing to undo, and more than once.
        """
        return None

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """What would make ``operation`` fail on ``resource``, found before
        anything is written: a source that is not there, a command not on
        PATH, a restore target that is not empty. None by default.

        Not in the Karbor guide: protectflow calls it for every resource of an
        operation before its checkpoint exists (protect) or before its first
        hook runs (``checkpoint``: the checkpoint a restore reads), and
        reports every problem of every resource at once. It must write
        nothing.

        Returns
        -------
        list of str
            One line per problem, naming the resource, what is wrong and how
            to fix it.
        """
        return []

    def get_operation(self, operation: str, resource: Resource) -> Operation:
        """The Operation for ``operation`` (``protect``, ``restore``, ...)."""
        getter = getattr(self, f"get_{operation}_operation")
        op: Operation = getter(resource)
        return op

    def get_parameters_schema(self, operation: str, resource_type: str) -> dict[str, Any]:
        """The schema the compiler checks ``operation``'s parameters against.

        The guide names no schema for copy and delete: they take any object.
        """
        if operation == "protect":
            return self.get_options_schema(resource_type)
        if operation == "restore":
            return self.get_restore_schema(resource_type)
        if operation == "verify":
            return self.get_verify_schema(resource_type)
        return _ANY_OBJECT


class Protectable:
    """Discovers resources of one type and the resources they depend on."""

    resource_type: ClassVar[str] = ""
    parent_resource_types: ClassVar[Sequence[str]] = ()
    #: As :attr:`ProtectionPlugin.fallback`.
    fallback: ClassVar[bool] = False

    def get_resource_type(self) -> str:
        return self.resource_type

    def get_parent_resource_types(self) -> Sequence[str]:
        return tuple(self.parent_resource_types)

    def list_resources(self, context: Any, parameters: Any = None) -> list[Resource]:
        return []

    def show_resource(self, context: Any, resource_id: str, parameters: Any = None) -> Resource:
        return Resource(self.get_resource_type(), resource_id)

    def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Resource]:
        """The resources ``parent_resource`` depends on (its children)."""
        return []
