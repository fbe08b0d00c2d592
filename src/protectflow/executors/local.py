"""The serial and threads executors: the shared loop with two ``submit``s."""

from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor

from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError
from protectflow.executors._loop import Done, run_loop
from protectflow.executors.instances import Instances
from protectflow.executors.invoke import HookCall, HookResult, failed_result, invoke_hook
from protectflow.executors.options import RunOptions
from protectflow.executors.report import RunReport

__all__ = ["SerialExecutor", "ThreadsExecutor"]


class SerialExecutor:
    """One hook at a time, in the calling thread, in a fixed order (most
    critical first, ties lowest node index first): the executor to debug with
    (a breakpoint in a hook just works, unless the hook has a timeout and so
    runs in a helper thread).
    """

    name = "serial"

    def run(self, dag: HookDAG, options: RunOptions | None = None) -> RunReport:
        options = options or RunOptions()
        # The run's Operations, dropped when it returns.
        instances = Instances(options.registry)

        def submit(calls: list[HookCall], done: Done) -> None:
            for call in calls:  # one at a time: the loop's capacity is 1
                done(invoke_hook(call, instances))

        return run_loop(dag, options, submit=submit, capacity=1, executor=self.name)


class ThreadsExecutor:
    """A ready-queue over a pool of ``workers`` threads (default 8).

    Only ``workers`` hooks are handed to the pool at once, so that after a
    failure or a cancel nothing is left queued inside the pool to start.
    A hook that times out keeps its helper thread until it returns; the pool
    thread itself is free again at once.
    """

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ExecutorError(f"workers={workers}: the threads executor needs at least 1")
        self.workers = workers or 8

    def run(self, dag: HookDAG, options: RunOptions | None = None) -> RunReport:
        options = options or RunOptions()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="protectflow")
        # The run's Operations, dropped when it returns (an abandoned hook
        # still holds its own).
        instances = Instances(options.registry)

        def submit(calls: list[HookCall], done: Done) -> None:
            for call in calls:
                future = pool.submit(invoke_hook, call, instances)
                future.add_done_callback(functools.partial(_finished, call, done))

        try:
            return run_loop(dag, options, submit=submit, capacity=self.workers,
                            executor=self.name)
        finally:
            # Abandoned hooks (a cancel's grace period ran out) may still run.
            pool.shutdown(wait=False, cancel_futures=True)


def _finished(call: HookCall, done: Done, future: Future[HookResult]) -> None:
    done(_result(call, future))


def _result(call: HookCall, future: Future[HookResult]) -> HookResult:
    # invoke_hook returns failures as values; this is for the unforeseen.
    try:
        return future.result()
    except BaseException as err:
        return failed_result(call, err)
