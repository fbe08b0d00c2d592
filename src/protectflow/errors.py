"""The errors protectflow raises: one small tree, each carrying its data.

Every error subclasses :class:`ProtectflowError` and the builtin a caller would
catch anyway (``ValueError`` for bad input, ``LookupError`` for a missing name),
and its message says what is wrong, shows the value and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BankError",
    "BankFullError",
    "BankLockedError",
    "BankNotFoundError",
    "CheckpointBusyError",
    "CheckpointNotFoundError",
    "ChunkError",
    "CommandError",
    "ConfigError",
    "CorruptObjectError",
    "CycleError",
    "DagFormatError",
    "ExecutorError",
    "GraphExportError",
    "LocalPluginError",
    "MissingDependencyError",
    "NotResumableError",
    "OperationInterrupted",
    "ParameterError",
    "PlanError",
    "PluginError",
    "PreflightError",
    "ProtectflowError",
    "ProtectflowWarning",
    "RenderError",
    "RunFailed",
    "SchedulerBusyError",
    "Terminated",
]


def _rebuilt(cls: type[BaseException], args: tuple[object, ...],
             state: dict[str, object]) -> BaseException:
    """An error of ``cls`` as :meth:`_Picklable.__reduce__` took it apart,
    rebuilt without calling its ``__init__`` (whose parameters differ)."""
    err = cls.__new__(cls, *args)
    BaseException.__init__(err, *args)
    err.__dict__.update(state)
    return err


class _Picklable(BaseException):
    """Pickles an error as its class, its message arguments and its data, so
    that an error whose ``__init__`` takes other parameters than its message
    (a ``ConfigError``'s source and errors) survives the trip from a dask
    worker or another process as the same error."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


class ProtectflowError(_Picklable, Exception):
    """Base of every error protectflow raises on purpose (the exit code the
    command line gives each kind is chosen in :mod:`protectflow.cli.outcome`)."""


class PlanError(ProtectflowError, ValueError):
    """A plan that cannot be compiled; ``errors`` lists every problem found."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        self.errors = list(errors) or [message]
        if errors:
            message = message + "\n" + "\n".join(f"  - {e}" for e in errors)
        super().__init__(message)


class PreflightError(PlanError):
    """What an operation's checks before it writes anything found: a source
    that is not there, a command not on PATH, a restore target that is not
    empty. ``errors`` lists every problem with its fix; nothing was written."""


class CycleError(PlanError):
    """The resource graph has a cycle; ``cycle`` lists its keys, first == last."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            "cycle: " + " -> ".join(self.cycle)
            + "\n  a resource graph must be acyclic: remove one of these dependencies"
        )


class ParameterError(PlanError):
    """Parameters that fail their plugin's schema; every error at once."""


class PluginError(ProtectflowError, LookupError):
    """A plugin that is missing, conflicting or broken; ``plugin`` names it."""

    def __init__(self, message: str, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would repr() a single argument
        return str(self.args[0])


class ConfigError(ProtectflowError, ValueError):
    """A configuration file or environment setting that is not valid;
    ``source`` names the file (or variable) and ``errors`` lists every problem."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(f"{source} is not valid:\n" + "\n".join(f"  - {e}" for e in errors))


class DagFormatError(ProtectflowError, ValueError):
    """A HookDAG file that is not valid JSON, not valid against the schema, or
    of another format version."""


class GraphExportError(ProtectflowError, ValueError):
    """A graph a file format cannot hold as it is; ``text`` is the value it cannot
    write (GraphML, being XML 1.0, has no way to write most control characters)."""

    def __init__(self, message: str, text: str) -> None:
        self.text = text
        super().__init__(message)


class ExecutorError(ProtectflowError, LookupError):
    """An executor that does not exist or cannot start."""

    def __str__(self) -> str:
        return str(self.args[0])


class MissingDependencyError(ProtectflowError, ImportError):
    """An optional dependency is not installed; the message says how to get it."""


class BankError(ProtectflowError, ValueError):
    """A bank operation that was refused: a bad key, a read-only section, a
    missing object or an illegal checkpoint transition. What a caller must
    tell apart has a class of its own below; each keeps its message."""


class BankNotFoundError(BankError):
    """There is no bank where one was expected (a mistyped ``--bank``), or
    nothing in it yet to read."""


class BankLockedError(BankError):
    """A bank whose key cannot be had. ``problem`` says which: ``"missing"``
    (no key file and no password given, or a key folder refused as unsafe, or
    a key rotation that holds the bank) or ``"wrong"`` (a password no key
    opens with, a key of another bank). Nothing was read from the bank, so
    nothing in it is known to be damaged."""

    MISSING = "missing"
    WRONG = "wrong"

    def __init__(self, message: str, problem: str = MISSING) -> None:
        self.problem = problem
        super().__init__(message)


class CheckpointNotFoundError(BankError, LookupError):
    """No checkpoint of that id (or id prefix) in the bank."""


class CheckpointBusyError(BankError):
    """Another operation holds the checkpoint's lease (or took it over)."""


class SchedulerBusyError(BankError):
    """Another scheduler runs the bank's schedules (it holds the bank's
    scheduler lease); ``holder`` describes it."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class CorruptObjectError(BankError):
    """An object of the bank that fails authentication or does not read as
    what it should be (a damaged record, journal or lease); ``key`` names
    it when known. Restoring it from a copy of the bank is the fix."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(message)


class NotResumableError(BankError):
    """A checkpoint's operation that ``resume`` cannot continue: nothing to
    resume, an operation that is run again instead, or a plan, plugin or
    DAG that changed since its journal was written."""


class ChunkError(BankError):
    """A chunk that is missing or whose bytes do not hash to its name."""


class DamagedFilesError(ChunkError):
    """A restore that wrote every intact file of a resource but not the
    damaged ones: ``damaged`` names each (``path: bytes A-B: why``)."""

    def __init__(self, message: str, damaged: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.damaged = damaged


class BankFullError(BankError):
    """The bank's storage ran out of space (or quota) during an operation:
    the operation failed, the input was not wrong."""


class LocalPluginError(ProtectflowError, RuntimeError):
    """A local plugin's hook failed: a bad location, a refused target, bad data."""


class CommandError(LocalPluginError):
    """A freeze or thaw command failed; ``returncode`` and ``stderr`` say how."""

    def __init__(self, message: str, returncode: int | None, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message)


class RenderError(ProtectflowError, RuntimeError):
    """Graphviz could not draw a DAG (it failed, or ran out of its time)."""


class RunFailed(ProtectflowError):
    """An operation's run ended with failed hooks; ``report`` holds every hook."""

    def __init__(self, message: str, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class ProtectflowWarning(UserWarning):
    """Something the user should know that stopped nothing: a password entry
    of a bank that cannot be read, keys crossing the network in clear. The
    command line prints it as ``protectflow: warning: ...``."""


class Terminated(_Picklable, KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) taken as Ctrl-C, so that it
    follows Ctrl-C's path: the run is cancelled, the checkpoint marked and the
    lease released (see :mod:`protectflow.signals`); ``signum`` names it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


class OperationInterrupted(_Picklable, KeyboardInterrupt):
    """An operation on a checkpoint interrupted by Ctrl-C or a termination
    signal (the original interrupt is its ``__cause__``), after it marked the
    checkpoint and released its lease: ``operation``, ``checkpoint_id`` and
    ``bank`` say what to resume."""

    def __init__(self, operation: str, checkpoint_id: str, bank: str) -> None:
        self.operation = operation
        self.checkpoint_id = checkpoint_id
        self.bank = bank
        super().__init__(f"the {operation} of checkpoint {checkpoint_id} in {bank} "
                         "was interrupted")
