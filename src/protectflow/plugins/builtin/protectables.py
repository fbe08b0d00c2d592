"""Protectables of the local plugins: what a folder holds.

- ``protectflow::fs::Directory``: the folders directly under
  ``parameters["root"]`` (hidden ones and symlinks left out), each with id
  its name and ``extra_info.path`` its absolute path;
- ``protectflow::sqlite::Database``: the SQLite database files directly
  under ``root`` (those starting with SQLite's header), likewise.

A plan discovers them with ``discover: {type: ..., parameters: {root: ...}}``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.base import Protectable
from protectflow.plugins.builtin.fs import DIRECTORY
from protectflow.plugins.builtin.sqlite import DATABASE

__all__ = ["DirectoryProtectable", "SqliteDatabaseProtectable"]

SQLITE_HEADER = b"SQLite format 3\0"


class _InFolder(Protectable):
    """Resources that are entries directly under a root folder."""

    kind: ClassVar[str] = ""

    def _root(self, parameters: Any) -> str:
        root = (parameters or {}).get("root")
        if not isinstance(root, str) or not root:
            raise LocalPluginError(f"{self.resource_type}: give the folder to look in as "
                                   "parameters: {root: PATH}")
        return os.path.abspath(os.path.expanduser(root))

    def _is_one(self, path: str) -> bool:
        raise NotImplementedError

    def _resource(self, root: str, name: str) -> Resource:
        return Resource(self.resource_type, name, name=name,
                        extra_info={"path": os.path.join(root, name)})

    def list_resources(self, context: Any, parameters: Any = None) -> list[Resource]:
        """Every matching entry of ``root``, sorted by name.

        Raises
        ------
        LocalPluginError
            When ``root`` is not given or cannot be read.
        """
        root = self._root(parameters)
        try:
            names = sorted(os.listdir(root))
        except OSError as err:
            raise LocalPluginError(f"{self.resource_type}: cannot list {root}: "
                                   f"{err.strerror or err}") from err
        return [self._resource(root, n) for n in names
                if not n.startswith(".") and self._is_one(os.path.join(root, n))]

    def show_resource(self, context: Any, resource_id: str, parameters: Any = None) -> Resource:
        """The entry ``resource_id`` of ``root``.

        Raises
        ------
        LocalPluginError
            When it is not a plain name, or there is no such {kind} there.
        """
        root = self._root(parameters)
        if resource_id in ("", ".", "..") or os.sep in resource_id or "/" in resource_id:
            raise LocalPluginError(f"{self.resource_type}: {resource_id!r} is not a name "
                                   f"directly under {root}")
        if not self._is_one(os.path.join(root, resource_id)):
            raise LocalPluginError(f"{self.resource_type}: no {self.kind} {resource_id!r} "
                                   f"in {root}")
        return self._resource(root, resource_id)


class DirectoryProtectable(_InFolder):
    resource_type = DIRECTORY
    kind = "folder"

    def _is_one(self, path: str) -> bool:
        return os.path.isdir(path) and not os.path.islink(path)


class SqliteDatabaseProtectable(_InFolder):
    resource_type = DATABASE
    kind = "SQLite database"

    def _is_one(self, path: str) -> bool:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        try:
            with open(path, "rb") as f:
                return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except OSError:
            return False
