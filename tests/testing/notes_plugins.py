"""A small plugin for the kit's own tests, and broken versions of it.

``kit::Note`` is a text file (``extra_info.path``); protect stores its text
in the bank, restore writes it to ``<target>/<id>``. Importable by name
(``notes_plugins:registry``) from the kit's child processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from protectflow.dag import Resource
from protectflow.plugins import Operation, ProtectionPlugin, Registry

NOTE = "kit::Note"
SPEC = "notes_plugins:registry"


class Protect(Operation):
    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        text = Path(resource.extra_info["path"]).read_text()
        checkpoint.get_resource_bank_section(resource).update_object("text", text)
        return {"chars": len(text)}


class Restore(Operation):
    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        text = checkpoint.get_resource_bank_section(resource).get_object("text")
        dest = Path(parameters["target"]) / resource.id
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(self.keep(text))
        kwargs["new_resources"][resource.key] = str(dest)
        return {"path": str(dest)}

    def keep(self, text: str) -> str:
        return text


class NotesPlugin(ProtectionPlugin):
    supported_resource_types = (NOTE,)
    restore_schema = {"type": "object", "required": ["target"],
                      "properties": {"target": {"type": "string"}}}

    def get_protect_operation(self, resource: Resource) -> Operation:
        return Protect()

    def get_restore_operation(self, resource: Resource) -> Operation:
        return Restore()


class Counting(Operation):
    """Not idempotent: each run stores one more copy."""

    def on_prepare_finish(self, checkpoint: Any, resource: Resource, context: Any,
                          parameters: dict[str, Any], **kwargs: Any) -> Any:
        section = checkpoint.get_resource_bank_section(resource)
        n = len(section.list_objects())
        section.update_object(f"copy-{n}", "again")
        return None


class NotIdempotent(NotesPlugin):
    def get_protect_operation(self, resource: Resource) -> Operation:
        return Counting()


class Lossy(Restore):
    def keep(self, text: str) -> str:
        return text[: len(text) // 2]


class LosesData(NotesPlugin):
    def get_restore_operation(self, resource: Resource) -> Operation:
        return Lossy()


class CrashingCleanUp(NotesPlugin):
    """Its on_failure removes a file that only the first call finds."""

    def on_failure(self, checkpoint: Any, resource: Resource, context: Any,
                   parameters: dict[str, Any], **kwargs: Any) -> Any:
        os.remove(Path(resource.extra_info["path"]).with_suffix(".lock"))


def registry() -> Registry:
    return Registry({"notes": NotesPlugin(), "not-idempotent": NotIdempotent(),
                     "loses-data": LosesData(), "crashing-clean-up": CrashingCleanUp()})


def make_note(folder: Path) -> Resource:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "note.txt"
    path.write_text("remember the milk\n" * 10)
    path.with_suffix(".lock").write_text("")  # for CrashingCleanUp's first call
    return Resource(NOTE, "note", extra_info={"path": str(path)})


def compare_notes(original: Resource, restored: Any) -> str | None:
    before = Path(original.extra_info["path"]).read_text()
    after = Path(restored).read_text()
    return None if before == after else f"{len(before)} chars protected, {len(after)} restored"
