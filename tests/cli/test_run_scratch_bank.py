"""`protectflow run` gives a protect's hooks a checkpoint in a throw-away bank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_protects_the_shop_into_a_scratch_bank_that_does_not_outlive_it(
        tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "examples" / "shop" / "make_shop.py"),
                    str(tmp_path / "shop")], check=True, capture_output=True)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    config = tmp_path / "config"
    env = {**os.environ, "TMPDIR": str(scratch), "PROTECTFLOW_BANK": str(tmp_path / "bank"),
           "XDG_CONFIG_HOME": str(config)}
    env.pop("PROTECTFLOW_PASSWORD", None)
    done = subprocess.run(
        [sys.executable, "-m", "protectflow.cli", "run", str(tmp_path / "shop" / "plan.yaml"),
         "--executor", "threads", "--report", str(tmp_path / "report.json")],
        capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert '"state": "succeeded"' in (tmp_path / "report.json").read_text()
    # the fs and sqlite hooks wrote to a bank; neither it nor the default bank remains
    assert [p.name for p in scratch.iterdir() if p.name.startswith("protectflow-run-")] == []
    assert not (tmp_path / "bank").exists()
    # and no key file of it is left in the key folder (none was written there)
    keys = config / "protectflow" / "keys"
    assert not keys.exists() or list(keys.iterdir()) == []
