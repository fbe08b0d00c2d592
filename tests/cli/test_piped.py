"""The command when nobody watches a terminal: plain progress lines on
stderr while a long run goes, and shell completion loaded from the real
installed command."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests import needs, waits
from tests.robustness.robust_helpers import COMMAND, protectflow


def test_a_piped_run_prints_plain_progress_lines(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: slow\nresources:\n  - {type: OS::Cinder::Volume, id: v}\n"
                    "parameters:\n  OS::Cinder::Volume: {main_seconds: 1.5}\n")
    done = protectflow(["protect", str(plan), "--bank", str(tmp_path / "bank")],
                       env={"PROTECTFLOW_PROGRESS_INTERVAL": "0.2"})
    assert done.returncode == 0, done.stderr
    lines = re.findall(r"protect \(threads\): (\d+)/4 hooks done, 0 failed", done.stderr)
    assert len(lines) >= 2  # the main hook alone outlasts several intervals
    assert [int(n) for n in lines] == sorted(int(n) for n in lines)


@needs.tool("bash", "bash")
@pytest.mark.skipif(len(COMMAND) != 1, reason=f"the protectflow command {needs.TEST_EXTRA}")
def test_bash_completes_with_the_installed_command(tmp_path: Path) -> None:
    script = subprocess.run([*COMMAND, "completion", "bash"], capture_output=True, text=True,
                            check=True).stdout
    (tmp_path / "completion.bash").write_text(script)
    line = "protectflow protect --sch"
    words = line.split(" ")
    env = {**os.environ, "PATH": f"{Path(COMMAND[0]).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", f"source {tmp_path / 'completion.bash'} && "
         f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({line}); '
         f"COMP_CWORD={len(words) - 1}; _python_argcomplete protectflow; "
         "printf '%s\\n' \"${COMPREPLY[@]}\""],
        capture_output=True, text=True, env=env, timeout=waits.LIMIT, check=False)
    assert done.returncode == 0, done.stderr
    assert [w.strip() for w in done.stdout.splitlines() if w.strip()] == ["--scheduler"]
