"""Shell completion: the scripts load in their shells, and a Tab in bash
completes the command's own subcommands and options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protectflow.cli.completion import SHELLS, completion_script
from tests import needs, waits

# A stand-in for the installed command: completion answered first, as the CLI will.
COMMAND = f"""#!{sys.executable}
from protectflow.cli import build_parser
from protectflow.cli.completion import answer
answer(build_parser())
raise SystemExit("not a completion request")
"""


def _bash(script: str, tmp_path: Path) -> str:
    (tmp_path / "protectflow").write_text(COMMAND)
    (tmp_path / "protectflow").chmod(0o755)
    (tmp_path / "completion.bash").write_text(completion_script("bash"))
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", f"source {tmp_path / 'completion.bash'} && {script}"],
                          capture_output=True, text=True, env=env, timeout=waits.LIMIT,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs.tool("bash", "bash")
def test_bash_loads_the_script_and_registers_protectflow(tmp_path: Path) -> None:
    out = _bash("complete -p protectflow", tmp_path)
    assert out.strip().endswith("-F _python_argcomplete protectflow")


def _tab(line: str, tmp_path: Path) -> list[str]:
    words = line.split(" ")
    script = (f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
              f"COMP_WORDS=({' '.join(words)} ); COMP_CWORD={len(words) - 1}; "
              "_python_argcomplete protectflow; printf '%s\\n' \"${COMPREPLY[@]}\"")
    return sorted(w.strip() for w in _bash(script, tmp_path).splitlines() if w.strip())


@needs.tool("bash", "bash")
def test_a_tab_in_bash_completes_subcommands_and_options(tmp_path: Path) -> None:
    assert _tab("protectflow chec", tmp_path) == ["checkpoints"]
    assert {"compile", "protect", "restore", "validate"} <= set(_tab("protectflow ", tmp_path))
    assert "--operation" in _tab("protectflow compile --op", tmp_path)


@pytest.mark.parametrize("shell", SHELLS)
def test_every_shell_gets_a_script_naming_the_command(shell: str) -> None:
    assert "protectflow" in completion_script(shell)


@needs.tool("zsh", "zsh")
def test_zsh_parses_its_script(tmp_path: Path) -> None:
    (tmp_path / "c.zsh").write_text(completion_script("zsh"))
    done = subprocess.run(["zsh", "-n", str(tmp_path / "c.zsh")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr


@needs.tool("fish", "fish")
def test_fish_parses_its_script(tmp_path: Path) -> None:
    (tmp_path / "c.fish").write_text(completion_script("fish"))
    done = subprocess.run(["fish", "--no-execute", str(tmp_path / "c.fish")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_an_unknown_shell_is_refused() -> None:
    with pytest.raises(ValueError, match="use one of bash, zsh, fish"):
        completion_script("csh")


@needs.tool("bash", "bash")
def test_a_tab_completes_executor_names(tmp_path: Path) -> None:
    assert _tab("protectflow run plan.yaml --executor ", tmp_path) == ["dask", "serial", "threads"]
    assert _tab("protectflow protect plan.yaml --executor th", tmp_path) == ["threads"]


@needs.tool("bash", "bash")
def test_a_tab_completes_checkpoint_ids_of_the_bank_the_command_would_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from protectflow import operations
    from protectflow.compiler import parse_plan

    plan = parse_plan('{"name": "p", "resources": [{"type": "OS::Cinder::Volume", "id": "v"}]}',
                      source="p.json")
    # A bank with a password only: the ids are listed without it, and nothing asks for it.
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "secret")
    ids = sorted(operations.protect(plan, bank=str(tmp_path / "bank")).checkpoint.id
                 for _ in range(2))
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    monkeypatch.setenv("PROTECTFLOW_BANK", str(tmp_path / "bank"))

    def words(line: str) -> list[str]:  # the ids offered, beside the options
        return [w for w in _tab(line, tmp_path) if not w.startswith("-")]

    assert words("protectflow restore ") == ids
    assert _tab(f"protectflow checkpoints show {ids[1][:16]}", tmp_path) == [ids[1]]
    monkeypatch.setenv("PROTECTFLOW_BANK", str(tmp_path / "none"))
    assert words(f"protectflow verify --bank {tmp_path / 'bank'} ") == ids
    assert words("protectflow verify ") == []  # no bank there: nothing
