"""The dask executor: the shared loop, with hook runners on the dask workers
(see :mod:`protectflow.executors._dask_runners`).

Runs on a running ``dask.distributed`` cluster (``scheduler="tcp://..."`` or a
``client``), or on a LocalCluster it starts and stops itself. dask is imported
only when this executor is made.

A run on a checkpoint sends the bank's derived keys to the workers inside
its tasks (see :class:`protectflow.bank.Bank`'s pickling). When the cluster
is reached over a transport that does not encrypt (``tcp://``, ``ws://``) at
an address that is not this machine's loopback, the run warns, once per
process (a :class:`~protectflow.errors.ProtectflowWarning`): those keys then
cross the network in clear. ``tls://`` and ``wss://`` clusters, in-process
ones (``inproc://``) and a local cluster on ``127.0.0.1`` do not warn.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from protectflow.bank import Bank
from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError, MissingDependencyError, ProtectflowWarning
from protectflow.executors._dask_runners import PoolRun, runners
from protectflow.executors._loop import run_loop
from protectflow.executors.options import RunOptions
from protectflow.executors.report import DASHBOARD, Event, RunReport

__all__ = ["DaskExecutor"]

_MISSING = "the dask executor needs 'distributed': pip install 'protectflow[dask]'"
_runs = itertools.count()
#: Transports that encrypt, or never leave the process.
_PRIVATE_SCHEMES = frozenset({"tls", "wss", "inproc"})
_warned_clear = threading.Event()  # the clear-keys warning is given once per process


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Start a local cluster's worker processes with SIGINT blocked, and hold a
    Ctrl-C that comes meanwhile until the cluster is up.

    A terminal's Ctrl-C goes to its whole foreground process group, the
    worker processes of a local cluster included: they would die at once and
    fail their hooks before this process, which owns the run, turns its own
    SIGINT into a clean stop (exit 130, the checkpoint marked, the resume
    command printed). A blocked signal stays blocked in the threads this
    thread starts and across the workers' fork and exec until the workers
    install their own handler, which the executor then replaces by an ignore
    (``_ignore_sigint``); the client stops them itself. Blocked, not ignored: a Ctrl-C of
    this process during the start stays pending and is delivered when the
    block ends -- a KeyboardInterrupt there, the run stopped cleanly -- where
    an ignored one would be lost and the run go on to its end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # A Ctrl-C held meanwhile is delivered now: KeyboardInterrupt, here.
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_sigint() -> None:
    """In a local cluster's worker process (its main thread runs the tasks
    that ``Client.run`` sends): leave SIGINT to the process that owns the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _probe(address: str, timeout: float) -> bool:
    """Raise ExecutorError unless a TCP scheduler address accepts a connection;
    True once it did, False for other schemes (left to ``Client``)."""
    # Here, not at the top: distributed is heavy and optional (see the module).
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return False
        host, port = parse_host_port(location)
    except ValueError as err:
        raise ExecutorError(f"bad --scheduler {address!r}: {err}; give it as "
                            "tcp://HOST:PORT") from err
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ExecutorError(
            f"cannot reach the dask scheduler at {address!r} within {timeout:g} s: "
            f"{err.strerror or err}; is `dask scheduler` running there?"
        ) from err
    return True


def _in_clear(addresses: Iterable[str]) -> list[str]:
    """The addresses a message to which crosses a network unencrypted."""
    from distributed.comm.addressing import get_address_host, parse_address

    found = []
    for address in addresses:
        try:
            scheme = parse_address(address)[0]
            host = "" if scheme in _PRIVATE_SCHEMES else get_address_host(address)
        except ValueError:
            found.append(address)  # unknown: say so rather than stay quiet
            continue
        if scheme in _PRIVATE_SCHEMES or host == "localhost":
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host.strip("[]")).is_loopback:
                continue
        found.append(address)
    return found


def _warn_if_keys_in_clear(options: RunOptions, addresses: Iterable[str]) -> None:
    """Warn (once) when the run's checkpoints carry a bank's keys to workers
    over an unencrypted network transport."""
    banks = [getattr(c, "bank", None) for c in (options.checkpoint, options.target_checkpoint)]
    if _warned_clear.is_set() or not any(isinstance(b, Bank) and b.unlocked for b in banks):
        return
    clear = _in_clear(addresses)
    if clear:
        _warned_clear.set()
        warnings.warn(
            f"the dask cluster is reached over an unencrypted transport ({clear[0]}): the "
            "bank's derived keys travel to its workers in every task, in clear on the "
            "network; use a tls:// cluster (see the README, \"dask across machines\")",
            ProtectflowWarning, stacklevel=3)


class _QuietShutdown(logging.Filter):
    """Drop the scheduler's ``broadcast to ... failed: CommClosedError`` errors
    while a LocalCluster of ours shuts down.

    The runners' pending polls (``_dask_runners``) reach the workers through
    the scheduler; when the workers close under them, the scheduler logs each
    as an error, though nothing is lost: the run has ended. Installed only for
    the shutdown, so the same error during a run is still seen.
    """

    _LOGGER = "distributed.scheduler"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("broadcast to") and "CommClosedError" in message)

    def install(self) -> None:
        logging.getLogger(self._LOGGER).addFilter(self)

    def remove(self) -> None:
        logging.getLogger(self._LOGGER).removeFilter(self)


class DaskExecutor:
    """Run hooks on the workers of a dask cluster.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts
        a LocalCluster of ``workers`` processes for the run.
    workers, threads_per_worker, processes
        The LocalCluster to start when there is no ``scheduler``.
    client
        A ``distributed.Client`` to use as it is (the caller closes it).
    connect_timeout
        Seconds to wait for ``scheduler`` to accept a connection before
        giving up. Once a TCP scheduler accepted one, the client's handshake
        with it waits as long as distributed's own connect timeout
        (``distributed.comm.timeouts.connect``): a busy scheduler is there,
        only slow to answer.
    prefetch
        Hooks handed to a worker per thread of it, so that a thread never
        waits for a round trip to the scheduling loop. Small: hooks handed to
        one worker cannot move to another that runs dry.
    chain
        The most hooks one call runs, one after the other, where it runs: a
        hook and those that can become ready only through it (see
        ``run_loop``). Off (1) by default: a chain runs its followers ahead
        of more critical hooks, and a runner needs no help to start hooks
        quickly.

    Raises
    ------
    MissingDependencyError
        When ``distributed`` is not installed.
    ExecutorError
        When ``scheduler`` is a TCP address that is malformed or does not
        accept a connection within ``connect_timeout``.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        *,
        threads_per_worker: int | None = None,
        processes: bool = True,
        client: Any = None,
        connect_timeout: float = 5.0,
        prefetch: int = 2,
        chain: int = 1,
    ) -> None:
        try:  # the one check that the optional dependency is there
            import distributed  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(_MISSING) from err
        self.scheduler, self.workers, self.client = scheduler, workers, client
        self.threads_per_worker, self.processes = threads_per_worker, processes
        self.connect_timeout, self.prefetch = connect_timeout, max(1, prefetch)
        self.chain = max(1, chain)
        self._listening = False
        if scheduler is not None and client is None:
            # Operations make their executor before they write to the bank: a
            # scheduler that is not there must fail here, not after protect has
            # created a checkpoint.
            self._listening = _probe(scheduler, connect_timeout)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        from distributed import Client, LocalCluster  # heavy and optional: only when used

        if self.client is not None:
            yield self.client
        elif self.scheduler is not None:
            with self._scheduler_client(self.scheduler) as client:
                yield client
        else:
            with contextlib.ExitStack() as stack:
                quiet = _QuietShutdown()
                stack.callback(quiet.remove)  # the first in is the last out
                with _workers_ignore_sigint():
                    cluster = stack.enter_context(LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                        # A dashboard on a free port, no log noise (workers closing at the end).
                        processes=self.processes, dashboard_address=":0",
                        silence_logs=logging.ERROR,
                    ))
                    stack.enter_context(client := Client(  # type: ignore[no-untyped-call]
                        cluster, set_as_default=False))
                    if self.processes:
                        # The worker processes install Python's own SIGINT
                        # handler when they start (the block above does not
                        # reach them): a terminal's Ctrl-C, sent to the whole
                        # process group, would kill them mid-hook.
                        client.run(_ignore_sigint)
                stack.callback(quiet.install)  # the last in: runs first, before the closes
                yield client


    def _scheduler_client(self, address: str) -> Any:
        from distributed import Client

        # A scheduler that accepted the probe is there, if slow to answer on a
        # busy machine: its answer is awaited as distributed awaits one.
        wait = {} if self._listening else {"timeout": self.connect_timeout}
        try:
            return Client(address, set_as_default=False, **wait)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as err:
            within = "" if self._listening else f" within {self.connect_timeout:g} s"
            raise ExecutorError(
                f"cannot reach the dask scheduler at {address!r}{within}: {err}; "
                "is `dask scheduler` running there?"
            ) from err

    def run(self, dag: HookDAG, options: RunOptions | None = None) -> RunReport:
        with self._connect() as client:
            nthreads = {w: n for w, n in client.nthreads().items() if n > 0}
            if not nthreads:
                raise ExecutorError(
                    f"the dask cluster at {client.scheduler.address} has no workers"
                )
            return self._run(client, dag, options or RunOptions(), nthreads)

    def _run(self, client: Any, dag: HookDAG, options: RunOptions,
             nthreads: dict[str, int]) -> RunReport:
        _warn_if_keys_in_clear(options, [client.scheduler.address, *nthreads])
        _announce_dashboard(client, options)
        pool = runners(client, nthreads)
        run = PoolRun(pool, f"protectflow-{next(_runs)}-{id(dag):x}", nthreads,
                      self.prefetch, options, dag)
        try:
            return run_loop(dag, options, submit=run.submit,
                            capacity=sum(nthreads.values()) * self.prefetch,
                            executor=self.name, abandon=run.abandon, chain=self.chain,
                            halt=run.halt)
        finally:
            run.end()


def _announce_dashboard(client: Any, options: RunOptions) -> None:
    """Tell the run's listeners where the cluster's dashboard is (the
    command prints it), if it has one."""
    try:
        link = client.dashboard_link
    except Exception:  # no dashboard (bokeh missing, turned off): nothing to say
        return
    event = Event(DASHBOARD, time.time(), message=str(link))
    for listener in options.listeners:
        try:
            listener(event)
        except Exception as err:  # a broken listener must not break the run
            warnings.warn(f"run listener {listener!r} failed: {err!r}", stacklevel=2)
