"""One operation's run, prepared once.

Protect, restore, verify, copy, delete, resume and ``run`` each call one of
:func:`prepare_plan`, :func:`prepare_checkpoint` or :func:`prepare` once,
before anything is written: it resolves the plan's provider, compiles the
DAG with it, makes the executor (a bad name fails here), checks the limits
against the DAG, serialises the DAG once and fingerprints that text, and
reads the plugins' versions. The frozen :class:`Prepared` it returns is the
one thing passed down: the checkpoint's creation, its ``dag.json``, the
journal, the resume check and the run all read from it, so none of that work
is done twice.

Run options are typed (:class:`RunSettings`): the executors'
:class:`~protectflow.executors.options.RunOptions` and the options that make
an executor given by name. The keyword options of the library's operations
become one at the edge (:meth:`RunSettings.of`), unknown names refused there.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import attrs

from protectflow.bank import Checkpoint
from protectflow.compiler import Plan, compile_graph, compile_plan
from protectflow.dag import HookDAG, jsonio
from protectflow.errors import ExecutorError
from protectflow.executors import Executor, RunReport, get_executor
from protectflow.executors.options import Journal, RunOptions
from protectflow.executors.report import Recorded
from protectflow.operations.preflight import check_limits, check_resources, select_resources
from protectflow.plugins.base import HookCheckpoint
from protectflow.plugins.providers import Provider, resolve_provider
from protectflow.plugins.registry import PROTECTIONS, configured_spec, get_registry

__all__ = [
    "EXECUTOR_OPTIONS",
    "Prepared",
    "RunSettings",
    "make_runner",
    "plugin_versions",
    "prepare",
    "prepare_checkpoint",
    "prepare_plan",
    "resolve",
]

#: Run options that make an executor given by name rather than the run.
EXECUTOR_OPTIONS = ("workers", "scheduler", "client")
_RUN_FIELDS = frozenset(f.name for f in attrs.fields(RunOptions))


@attrs.frozen
class RunSettings:
    """How an operation runs: the executors' typed :class:`RunOptions`
    (``keep_going``, ``limits``, ``listeners``, ``registry``...) and the
    options that make an executor given by name.

    The operation itself fills the run's ``checkpoint``, ``journal``,
    ``completed`` and ``target_checkpoint``.
    """

    run: RunOptions = attrs.field(factory=RunOptions)
    workers: int | None = None
    scheduler: str | None = None
    client: Any = None

    @classmethod
    def of(cls, options: Mapping[str, Any], *, base: RunSettings | None = None) -> RunSettings:
        """Keyword options as the library's operations take them, over ``base``.

        Raises
        ------
        ExecutorError
            For a name that is no run option nor executor option (listing
            them), or a bad value (a limit that is not a positive number).
        """
        unknown = sorted(set(options) - _RUN_FIELDS - set(EXECUTOR_OPTIONS))
        if unknown:
            raise ExecutorError(
                f"unknown run options: {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_RUN_FIELDS | set(EXECUTOR_OPTIONS)))}")
        base = base or cls()
        run = {k: v for k, v in options.items() if k in _RUN_FIELDS}
        made = {k: v for k, v in options.items() if k in EXECUTOR_OPTIONS}
        return attrs.evolve(base, run=attrs.evolve(base.run, **run) if run else base.run,
                            **made)

    @property
    def registry(self) -> str | None:
        """The registry spec the run's plugins come from (``None``: the installed ones)."""
        return self.run.registry

    def executor_options(self) -> dict[str, Any]:
        """The executor options that were given."""
        return {k: getattr(self, k) for k in EXECUTOR_OPTIONS if getattr(self, k) is not None}


@attrs.frozen
class Prepared:
    """One operation's run, ready to go: its DAG, that DAG's JSON text (for
    ``dag.json``) and fingerprint (for the checkpoint and the journal), the
    versions of its plugins, the provider that chose them, the executor and
    the run's options (the provider's configuration on their registry)."""

    dag: HookDAG
    text: str = attrs.field(repr=False)
    fingerprint: str
    plugin_versions: Mapping[str, str]
    provider: Provider
    executor: Executor
    options: RunOptions
    plan: Plan | None = None

    @property
    def registry(self) -> str | None:
        """The registry spec the run's plugins come from, configured by the provider."""
        return self.options.registry

    def check_resources(self, checkpoint: Checkpoint | None = None) -> None:
        """The plugins' checks of every resource
        (:func:`~protectflow.operations.preflight.check_resources`).

        Raises
        ------
        PreflightError
            Listing every problem of every resource.
        """
        check_resources(self.dag, checkpoint=checkpoint, registry=self.registry)

    def resuming(self, completed: Mapping[str, Recorded]) -> Prepared:
        """This run, taking ``completed`` hooks as done (a resumed run)."""
        return attrs.evolve(self, options=attrs.evolve(self.options, completed=completed))

    def run(self, checkpoint: HookCheckpoint | None, *, journal: Journal | None = None,
            target_checkpoint: HookCheckpoint | None = None) -> RunReport:
        """Run the DAG on the executor with ``checkpoint`` given to every hook."""
        options = attrs.evolve(self.options, checkpoint=checkpoint, journal=journal,
                               target_checkpoint=target_checkpoint)
        return self.executor.run(self.dag, options)


@functools.cache
def _plugin_version(name: str) -> str:
    """``distribution version`` of the protection plugin ``name`` (``unknown``
    for one not installed through an entry point), read once a process:
    reading the entry points and a distribution's metadata costs tens of
    milliseconds, which a forget of thousands of checkpoints would pay per
    delete."""
    found = {ep.name: ep for ep in entry_points(group=PROTECTIONS)}
    dist = getattr(found.get(name), "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"


def plugin_versions(dag: HookDAG) -> dict[str, str]:
    """Plugin name -> ``distribution version`` of every protection plugin the
    DAG uses (``unknown`` for one not installed through an entry point)."""
    return {name: _plugin_version(name) for name in sorted({n.plugin for n in dag.nodes})}


def resolve(provider: str | Mapping[str, Any] | Provider | None,
            settings: RunSettings) -> Provider:
    """The provider a plan's ``provider`` field names (``None``: the default
    one), checked against the registry of ``settings``.

    Raises
    ------
    PluginError
        As :func:`~protectflow.plugins.providers.resolve_provider`.
    """
    return resolve_provider(provider, get_registry(settings.registry))


def make_runner(executor: str | Executor, settings: RunSettings) -> Executor:
    """The executor: one given by name made with the executor options, one
    given as an object as it is (executor options with it are refused).

    Raises
    ------
    ExecutorError, MissingDependencyError
        As :func:`protectflow.executors.get_executor`.
    """
    made = settings.executor_options()
    if isinstance(executor, str):
        return get_executor(executor, **made)
    if made:
        raise ExecutorError(
            f"unknown run options: {', '.join(sorted(made))}; executor options "
            "(workers, scheduler...) go with an executor name, not an executor object")
    return executor


def prepare(dag: HookDAG, *, provider: Provider, executor: str | Executor,
            settings: RunSettings, plan: Plan | None = None,
            pools: Mapping[str, Sequence[str]] | None = None) -> Prepared:
    """Prepare the run of a compiled ``dag`` (see the module's docstring);
    ``pools`` (default: the plan's) join the run options unless they name
    their own.

    Raises
    ------
    ExecutorError, MissingDependencyError
        For an executor that cannot be made, or a limit that names no
        resource type or pool of ``dag``.
    """
    pools = pools if pools is not None else (plan.pools if plan is not None else None)
    options = settings.run
    spec = configured_spec(options.registry, provider.config)
    options = attrs.evolve(options, registry=spec, pools=options.pools or dict(pools or {}))
    check_limits(dag, options.limits, options.pools)
    runner = make_runner(executor, settings)
    text = jsonio.dumps(dag)
    return Prepared(dag, text, jsonio.fingerprint(text), plugin_versions(dag), provider,
                    runner, options, plan)


def prepare_plan(plan: Plan, operation: str, *,
                 parameters: Mapping[str, Mapping[str, Any]] | None,
                 executor: str | Executor, settings: RunSettings,
                 provider: Provider | None = None) -> Prepared:
    """Compile ``plan`` for ``operation`` (with ``parameters``, else its
    own) under its provider, resolved once (``provider``, if the caller
    resolved it already), and prepare its run.

    Raises
    ------
    PlanError, PluginError
        For a bad plan, provider or parameters.
    ExecutorError, MissingDependencyError
        As :func:`prepare`.
    """
    provider = resolve(plan.provider if provider is None else provider, settings)
    dag = compile_plan(plan, operation, parameters=parameters, provider=provider)
    return prepare(dag, provider=provider, executor=executor, settings=settings, plan=plan)


def prepare_checkpoint(checkpoint: Checkpoint, operation: str, *,
                       parameters: Mapping[str, Mapping[str, Any]] | None,
                       executor: str | Executor, settings: RunSettings,
                       resources: Sequence[str] | None = None,
                       dependencies: bool = True) -> Prepared:
    """Compile ``operation`` over the checkpoint's saved resource graph, each
    resource served by the plugin the plan's provider chooses (the one its
    protect ran), and prepare its run; only ``resources`` (keys) when given,
    with what they depend on unless not ``dependencies``.

    Raises
    ------
    CorruptObjectError
        When the checkpoint's record cannot be read.
    PlanError, PluginError
        For bad parameters, or a provider that cannot be used any more.
    ExecutorError, MissingDependencyError
        As :func:`prepare`.
    """
    plan = checkpoint.plan
    provider = resolve(plan.provider, settings)
    graph = checkpoint.resource_graph
    if resources is not None:
        graph = select_resources(checkpoint, resources, dependencies=dependencies)
        # the parameters of the resources left out are not this run's
        names = graph.types() | set(graph.resources)
        parameters = {k: v for k, v in (parameters or {}).items() if k in names}
    dag = compile_graph(graph, operation, parameters=parameters or {},
                        plan_name=plan.name, limits=plan.limits, provider=provider)
    return prepare(dag, provider=provider, executor=executor, settings=settings, plan=plan)
