"""The configuration file, and where each setting of a command comes from.

The file is TOML, at ``$PROTECTFLOW_CONFIG`` or else ``config.toml`` in the
user's config folder (``~/.config/protectflow/config.toml`` on Linux)::

    bank = "offsite"                 # a folder, an fsspec URL, or a [banks] name
    executor = "threads"             # serial, threads, dask, or an executor plugin
    workers = 8
    password_file = "~/.config/protectflow/password"
    purge_after = "30d"              # forget/prune drop tombstones older than this

    [banks]
    offsite = "s3://backups/protectflow"
    local = "/srv/protectflow/bank"

Every setting is taken from the first of these that gives it (see
:func:`resolve_settings`):

1. the command's flag (``--bank``, ``--executor``, ``--workers``, ``--password-file``);
2. for the bank only, the plan's ``bank:`` when the command is given a plan;
3. the environment: ``PROTECTFLOW_BANK``, ``PROTECTFLOW_EXECUTOR``,
   ``PROTECTFLOW_WORKERS``, ``PROTECTFLOW_PASSWORD_FILE``;
4. the configuration file;
5. the defaults: the bank in the user's data folder, the ``threads`` executor.

Nothing here runs at import: the file is read when a command asks for it.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Mapping
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import attrs
import jsonschema
import platformdirs

from protectflow._urls import check_bank_url, user_bank_url
from protectflow.errors import BankError, ConfigError
from protectflow.retention import parse_interval

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_EXECUTOR",
    "ENV",
    "Config",
    "Settings",
    "config_path",
    "load_config",
    "named_bank",
    "parse_config",
    "resolve_settings",
]

CONFIG_ENV = "PROTECTFLOW_CONFIG"
DEFAULT_EXECUTOR = "threads"
#: The environment variable of each setting.
ENV = {
    "bank": "PROTECTFLOW_BANK",
    "executor": "PROTECTFLOW_EXECUTOR",
    "workers": "PROTECTFLOW_WORKERS",
    "password_file": "PROTECTFLOW_PASSWORD_FILE",
}


@attrs.frozen
class Config:
    """The settings a configuration file gives; ``source`` is its path (None: no file)."""

    bank: str | None = None
    executor: str | None = None
    workers: int | None = None
    password_file: str | None = None
    banks: Mapping[str, str] = attrs.field(factory=dict)
    source: str | None = None
    #: How long ``forget`` and ``prune`` keep a deleted checkpoint's tombstone
    #: (``30d``); None: for ever.
    purge_after: str | None = None


@attrs.frozen
class Settings:
    """The settings a command runs with; ``origins`` says where each came from
    (``flag``, ``plan``, an environment variable, the config file, ``default``)."""

    bank: str
    executor: str
    workers: int | None
    password_file: str | None
    origins: Mapping[str, str]


def config_path(environ: Mapping[str, str] | None = None) -> str:
    """``$PROTECTFLOW_CONFIG``, else ``config.toml`` in the user's config folder."""
    environ = os.environ if environ is None else environ
    named = environ.get(CONFIG_ENV)
    if named:
        return named
    return os.path.join(platformdirs.user_config_dir("protectflow"), "config.toml")


@cache
def _validator() -> Any:
    text = importlib_resources.files("protectflow").joinpath("schemas/config.schema.json")
    return jsonschema.Draft202012Validator(json.loads(text.read_text(encoding="utf-8")))


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration file.

    Parameters
    ----------
    path : str, optional
        The file; :func:`config_path` if omitted.
    environ : mapping, optional
        The environment to read ``PROTECTFLOW_CONFIG`` from (``os.environ``).

    Returns
    -------
    Config
        Empty when ``path`` is omitted and the default file does not exist.

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, or breaks the schema (an
        unknown key is named, with the key it may have meant); or when a file
        named by ``path`` or ``$PROTECTFLOW_CONFIG`` does not exist.
    """
    named = path is not None or bool((os.environ if environ is None else environ).get(CONFIG_ENV))
    source = os.fspath(path) if path is not None else config_path(environ)
    try:
        with open(source, "rb") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigError(source, ["the file does not exist"]) from None
        return Config()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, [f"cannot read it: {err}"]) from err
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "<config>") -> Config:
    """Parse and check a configuration file's text.

    Raises
    ------
    ConfigError
        As :func:`load_config`, every problem at once.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, [f"not valid TOML: {err}"]) from err
    errors = sorted(line for e in _validator().iter_errors(data) for line in _describe(e))
    for name, url in data.get("banks", {}).items() if not errors else ():
        try:
            check_bank_url(url)
        except BankError as err:
            errors.append(f"banks.{name}: {err}")
    if not errors and isinstance(data.get("bank"), str) and data["bank"] not in data.get(
            "banks", {}):
        try:
            check_bank_url(data["bank"])
        except BankError as err:
            errors.append(f"bank: {err}")
    if not errors and data.get("purge_after") is not None:
        try:
            parse_interval(data["purge_after"])
        except ValueError as err:
            errors.append(f"purge_after: {err}")
    if errors:
        raise ConfigError(source, errors)
    return Config(bank=data.get("bank"), executor=data.get("executor"),
                  workers=data.get("workers"), password_file=data.get("password_file"),
                  banks=dict(data.get("banks", {})), source=source,
                  purge_after=data.get("purge_after"))


def _describe(error: Any) -> list[str]:
    """A schema error as lines naming the key; unknown keys get a 'did you mean'."""
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            lines.append(f"unknown key {(where + '.' if where else '') + key!r}{hint}")
        return lines
    return [f"{where or '(top level)'}: {error.message}"]


def resolve_settings(
    config: Config,
    *,
    bank: str | None = None,
    plan_bank: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    password_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings a command runs with: flags, then (for the bank) the plan's,
    then the environment, then ``config``, then the defaults.

    Parameters
    ----------
    config : Config
        The configuration file's settings (:func:`load_config`).
    bank, executor, workers, password_file : optional
        The command's flags (None: not given).
    plan_bank : str, optional
        The ``bank:`` of the plan the command was given.
    environ : mapping, optional
        The environment (``os.environ``).

    Returns
    -------
    Settings
        A bank that names a ``[banks]`` entry is replaced by its URL.

    Raises
    ------
    ConfigError
        For a ``PROTECTFLOW_WORKERS`` that is not a whole number >= 1.
    BankError
        For a malformed bank URL.
    """
    environ = os.environ if environ is None else environ
    picked = {  # in the order of Settings.origins
        name: _first_given(name, flag, default, config=config, environ=environ, plan=plan)
        for name, flag, default, plan in [("bank", bank, user_bank_url(), plan_bank),
                                          ("workers", workers, None, None),
                                          ("executor", executor, DEFAULT_EXECUTOR, None),
                                          ("password_file", password_file, None, None)]
    }
    value = {name: v for name, (_, v) in picked.items()}
    return Settings(
        bank=named_bank(value["bank"], config), executor=value["executor"],
        workers=value["workers"], password_file=_expand(value["password_file"]),
        origins={name: origin for name, (origin, _) in picked.items()},
    )


def _first_given(
    name: str,
    flag: Any,
    default: Any,
    *,
    config: Config,
    environ: Mapping[str, str],
    plan: Any = None,
) -> tuple[str, Any]:
    """Where setting ``name`` comes from and its value: the first given of the
    flag, the plan's (only the bank has one), the environment, the config
    file, and the default.

    Raises
    ------
    ConfigError
        For a ``PROTECTFLOW_WORKERS`` that is not a whole number >= 1.
    """
    options = [("flag", flag), ("plan", plan), (ENV[name], environ.get(ENV[name]) or None),
               (f"the config file {config.source}", getattr(config, name)),
               ("default", default)]
    origin, value = next((o, v) for o, v in options if v is not None or o == "default")
    if name == "workers" and origin == ENV[name]:  # the environment gives text
        value = _env_workers(value)
    return origin, value


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path is not None else None


def _env_workers(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(ENV["workers"], [f"{value!r} is not a whole number >= 1"])
    return int(value)


def named_bank(value: str, config: Config) -> str:
    """The URL of a ``[banks]`` name (a name comes first: ``./NAME`` is the
    folder), else ``value`` as a folder or URL; checked either way. The
    current folder's content plays no part.

    Raises
    ------
    BankError
        For a malformed bank URL.
    """
    return check_bank_url(config.banks.get(value, value))
