"""Run one exec command: its environment, its streams, its timeout.

The command runs in a process group of its own (``start_new_session``), so a
timeout kills it and every process it started. Its standard error is read
as it comes and only the last :data:`TAIL_BYTES` kept: the failure reason
shows its last lines, with the values of the ``env_from`` secrets replaced
by ``***``. Its standard output is discarded (also read, its tail kept) or
handed to ``consume`` (the protect's stream into the bank); its standard
input is empty or fed by ``produce`` (the stored stream) from a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from protectflow.errors import CommandError

__all__ = ["TAIL_BYTES", "Outcome", "base_env", "run"]

#: The bytes of standard error (and of a discarded standard output) kept.
TAIL_BYTES = 16 << 10
_TAIL_LINES = 20
#: The variables of the operator's environment every command gets (with
#: ``env_from``'s and the plan's ``env``): what programs need to run, none of
#: them a secret.
_PASSED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL",
           "TERM")


class _Tail:
    """The last :data:`TAIL_BYTES` of a stream, read by a thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.data = bytearray()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                piece = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not piece:
                    break
                self.data += piece
                if len(self.data) > 2 * TAIL_BYTES:
                    del self.data[:-TAIL_BYTES]

    def text(self, secrets: Iterable[str]) -> str:
        self._thread.join()
        text = bytes(self.data[-TAIL_BYTES:]).decode(errors="replace")
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return "\n".join(text.rstrip().splitlines()[-_TAIL_LINES:])


class Outcome:
    """How a command ended: exit code, seconds, the tails of its output."""

    def __init__(self, code: int, seconds: float, stderr: str, stdout: str) -> None:
        self.code = code
        self.seconds = seconds
        self.stderr = stderr
        self.stdout = stdout

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exit_code": self.code, "seconds": round(self.seconds, 3)}
        if self.stderr:
            out["stderr"] = self.stderr
        if self.stdout:
            out["stdout"] = self.stdout
        return out


def base_env(env: Mapping[str, str], env_from: Iterable[str],
             own: Mapping[str, str]) -> dict[str, str]:
    """A command's environment: the harmless part of the operator's
    (:data:`_PASSED`, ``LC_*``), the ``env_from`` names taken from it, the
    plan's ``env``, then protectflow's ``PROTECTFLOW_*`` (``own``)."""
    out = {k: v for k, v in os.environ.items() if k in _PASSED or k.startswith("LC_")}
    out.update({name: os.environ[name] for name in env_from if name in os.environ})
    out.update(env)
    out.update(own)
    return out


def run(argv: tuple[str, ...] | str, *, cwd: str, env: Mapping[str, str],
        timeout: float | None, what: str, secrets: Iterable[str] = (),
        consume: Callable[[IO[bytes]], None] | None = None,
        produce: Callable[[IO[bytes]], None] | None = None) -> Outcome:
    """Run ``argv`` (a string through ``sh -c``) and wait for it.

    ``consume`` reads its standard output to the end (in this thread);
    ``produce`` writes its standard input (in another), which is closed after.

    Raises
    ------
    CommandError
        If it cannot start, overruns ``timeout`` (its process group is
        killed), exits non-zero, or ``consume``/``produce`` fail; the message
        names the command, what happened and the tail of its stderr.
    """
    shown = argv if isinstance(argv, str) else " ".join(argv)
    secrets = [s for s in secrets if s]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv if isinstance(argv, str) else list(argv), shell=isinstance(argv, str),
            cwd=cwd, env=dict(env), start_new_session=True,
            stdin=subprocess.PIPE if produce else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        raise CommandError(f"{what}: command {shown!r} could not start in {cwd}: "
                           f"{err.strerror or err}; install it or fix the plan", None,
                           "") from err
    assert proc.stdout is not None and proc.stderr is not None
    stderr = _Tail(proc.stderr)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    feeder_error: list[BaseException] = []
    feeder = None
    if produce is not None:
        assert proc.stdin is not None
        stdin = proc.stdin

        def feed() -> None:
            try:
                produce(stdin)
            except BrokenPipeError:
                pass  # the command stopped reading: its exit code says why
            except BaseException as err:
                feeder_error.append(err)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    stdout_tail = None
    consume_error: BaseException | None = None
    try:
        if consume is not None:
            try:
                consume(proc.stdout)
            except BaseException as err:
                consume_error = err
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        else:
            stdout_tail = _Tail(proc.stdout)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if feeder is not None:
        feeder.join()
    seconds = time.monotonic() - started
    tail = stderr.text(secrets)
    out_tail = stdout_tail.text(secrets) if stdout_tail is not None else ""
    with contextlib.suppress(OSError):
        proc.stdout.close()
    shown_tail = f"; stderr ends:\n{tail}" if tail else " (no stderr)"
    if timed_out.is_set():
        raise CommandError(f"{what}: command {shown!r} timed out: it did not finish in "
                           f"{timeout:g} s and was killed (with every process it started)"
                           f"{shown_tail}; raise its timeout in the plan if it needs longer",
                           None, tail)
    if consume_error is not None:
        if isinstance(consume_error, Exception):
            raise CommandError(f"{what}: storing the output of {shown!r} failed: "
                               f"{consume_error}", code, tail) from consume_error
        raise consume_error
    if feeder_error:
        raise CommandError(f"{what}: feeding the stored stream to {shown!r} failed: "
                           f"{feeder_error[0]}", code, tail) from feeder_error[0]
    if code != 0:
        how = (f"was killed by signal {-code}" if code < 0
               else f"failed with exit code {code}")
        raise CommandError(f"{what}: command {shown!r} {how}{shown_tail}", code, tail)
    return Outcome(code, seconds, tail, out_tail)
