"""Every error protectflow raises survives pickling as the same error, with
its message and its data: dask ships a hook's or a worker's error from
another process, and an error whose ``__init__`` takes other parameters than
its message (``ConfigError(source, errors)``, ``CycleError(cycle)``) must not
turn into a TypeError on the way."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest

from protectflow import errors

_SAMPLES: dict[str, tuple[Any, ...]] = {
    "ConfigError": ("config.toml", ["bank: not a string", "workers: below 1"]),
    "CycleError": (["A#1", "B#2", "A#1"],),
    "CommandError": ("the freeze command failed", 3, "no such file"),
    "GraphExportError": ("dot failed", "digraph {}"),
    "OperationInterrupted": ("restore", "3c88f4", "/srv/bank"),
    "Terminated": (15,),
    "PlanError": ("bad plan", ["a", "b"]),
    "PluginError": ("no such plugin", "nope"),
    "BankLockedError": ("wrong password", "wrong"),
    "CorruptObjectError": ("failed authentication", "checkpoints/x/record"),
    "RunFailed": ("the run failed",),
}
CLASSES = sorted(name for name in errors.__all__
                 if inspect.isclass(getattr(errors, name))
                 and issubclass(getattr(errors, name), BaseException))


def _sample(name: str) -> BaseException:
    cls = getattr(errors, name)
    return cls(*_SAMPLES.get(name, (f"a {name}",)))  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", CLASSES)
def test_an_error_pickles_as_itself(name: str) -> None:
    err = _sample(name)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and back.args == err.args
    assert vars(back) == vars(err)


def test_an_error_crosses_a_process_as_itself() -> None:
    err = errors.ConfigError("config.toml", ["bank: not a string"])
    code = ("import pickle, sys; err = pickle.loads(sys.stdin.buffer.read()); "
            "print(type(err).__name__, err.source, err.errors)")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(err),
                         capture_output=True, check=True).stdout.decode()
    assert out.strip() == "ConfigError config.toml ['bank: not a string']"
