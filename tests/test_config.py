"""The configuration file: TOML checked against its schema (unknown keys named
with the file), and the precedence flags > (plan) > environment > file > defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protectflow._urls import user_bank_url
from protectflow.cli.config import (
    CONFIG_ENV,
    DEFAULT_EXECUTOR,
    ENV,
    Config,
    config_path,
    load_config,
    parse_config,
    resolve_settings,
)
from protectflow.cli.outcome import exit_code
from protectflow.errors import BankError, ConfigError

FULL = """\
bank = "offsite"
executor = "serial"
workers = 3
password_file = "~/pw"

[banks]
offsite = "memory://offsite"
local = "/srv/bank"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_full_file_is_read(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL))
    assert config == Config(bank="offsite", executor="serial", workers=3, password_file="~/pw",
                            banks={"offsite": "memory://offsite", "local": "/srv/bank"},
                            source=str(tmp_path / "config.toml"))


def test_unknown_keys_are_named_with_the_file_and_a_guess(tmp_path: Path) -> None:
    path = _write(tmp_path, 'bnak = "/x"\nworkers = 0\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown key 'bnak'; did you mean 'bank'?" in message
    assert "unknown key 'colour'" in message
    assert "workers: 0 is less than the minimum of 1" in message
    assert exit_code(info.value) == 2
    assert len(info.value.errors) == 3


def test_bad_toml_and_bad_urls_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("bank = ", source="f.toml")
    with pytest.raises(ConfigError, match=r"banks\.x: bad bank URL 's3:/b'"):
        parse_config('[banks]\nx = "s3:/b"\n')
    with pytest.raises(ConfigError, match="bank: unknown scheme"):
        parse_config('bank = "s4://b"\n')
    with pytest.raises(ConfigError, match=r"banks\.x: 3 is not of type 'string'"):
        parse_config("[banks]\nx = 3\n")


def test_the_default_file_may_be_missing_but_a_named_one_may_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert config_path() == str(tmp_path / "xdg" / "protectflow" / "config.toml")
    assert load_config() == Config()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    with pytest.raises(ConfigError, match=r"env\.toml is not valid"):
        load_config()
    (tmp_path / "env.toml").write_text('executor = "dask"\n')
    assert load_config().executor == "dask"


def test_the_default_folder_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    (tmp_path / "protectflow").mkdir()
    (tmp_path / "protectflow" / "config.toml").write_text("workers = 5\n")
    assert load_config().workers == 5


def _env(**values: str) -> dict[str, str]:
    return {ENV[k]: v for k, v in values.items()}


def test_precedence_flag_plan_env_file_default(tmp_path: Path) -> None:
    config = parse_config(FULL, source="cfg.toml")
    env = _env(bank="/env/bank", executor="dask", workers="7", password_file="/env/pw")
    flags = resolve_settings(config, bank="/flag", plan_bank="/plan", executor="threads",
                             workers=2, password_file="/flag/pw", environ=env)
    assert (flags.bank, flags.executor, flags.workers, flags.password_file) == \
        ("/flag", "threads", 2, "/flag/pw")
    assert set(flags.origins.values()) == {"flag"}
    plan = resolve_settings(config, plan_bank="/plan", environ=env)
    assert (plan.bank, plan.origins["bank"]) == ("/plan", "plan")
    from_env = resolve_settings(config, environ=env)
    assert (from_env.bank, from_env.executor, from_env.workers, from_env.password_file) == \
        ("/env/bank", "dask", 7, "/env/pw")
    assert from_env.origins["workers"] == "PROTECTFLOW_WORKERS"
    from_file = resolve_settings(config, environ={})
    assert (from_file.bank, from_file.executor, from_file.workers, from_file.password_file) == \
        ("memory://offsite", "serial", 3, os.path.expanduser("~/pw"))
    assert from_file.origins["bank"] == "the config file cfg.toml"
    default = resolve_settings(Config(), environ={})
    assert (default.bank, default.executor, default.workers, default.password_file) == \
        (user_bank_url(), DEFAULT_EXECUTOR, None, None)
    assert set(default.origins.values()) == {"default"}


def test_an_empty_environment_variable_counts_as_unset() -> None:
    config = parse_config('executor = "serial"\n')
    assert resolve_settings(config, environ=_env(executor="")).executor == "serial"


def test_bank_names_resolve_from_every_source(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse_config(FULL)
    assert resolve_settings(config, bank="local", environ={}).bank == "/srv/bank"
    assert resolve_settings(config, environ=_env(bank="local")).bank == "/srv/bank"
    assert resolve_settings(config, bank="./local", environ={}).bank == "./local"
    # A name comes first, whatever the current folder holds: ./local is the folder.
    (tmp_path / "local").mkdir()
    assert resolve_settings(config, bank="local", environ={}).bank == "/srv/bank"
    assert resolve_settings(config, environ=_env(bank="local")).bank == "/srv/bank"


def test_bad_environment_values_are_errors_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="PROTECTFLOW_WORKERS is not valid"):
        resolve_settings(Config(), environ=_env(workers="many"))
    with pytest.raises(ConfigError, match="PROTECTFLOW_WORKERS"):
        resolve_settings(Config(), environ=_env(workers="0"))
    with pytest.raises(BankError, match="write s3://b"):
        resolve_settings(Config(), environ=_env(bank="s3:/b"))


def test_importing_protectflow_reads_no_config(tmp_path: Path) -> None:
    bad = _write(tmp_path, "not toml at all = = =\n")
    code = "import protectflow, protectflow.cli.config, protectflow.bank; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, CONFIG_ENV: str(bad)}, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
