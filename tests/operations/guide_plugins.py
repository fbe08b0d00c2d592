"""Plugins written to the guide alone, for the operations' tests: plain
classes, no protectflow base class, hooks declaring their arguments in
orders of their own and naming the extras they want.

``Guide::Note`` is a note whose text is ``extra_info["text"]``. Protect keeps
it in the bank (with the plugin's label, configuration and parameters),
restore publishes it in ``new_resources`` and reports ``restored`` through
Karbor's ``restore`` object, verify reports ``verified``, copy reports
``copied`` and returns the parameters it got, delete removes it. Three
plugins claim the type: ``notes-a`` and ``notes-b`` (which differ only in
their label) and ``notes-bad``, whose saved info breaks its own schema, so
a plan must choose with a provider. ``NoteShelf`` is the type's protectable:
it lists the notes its parameters hold.

The registry is ``tests.operations.guide_plugins:registry``, importable on
dask workers.
"""

from __future__ import annotations

from typing import Any

from protectflow.dag.model import Resource
from protectflow.plugins import Registry

NOTE = "Guide::Note"
SPEC = "tests.operations.guide_plugins:registry"


def _section(checkpoint: Any, resource: Resource) -> Any:
    return checkpoint.get_resource_bank_section(resource)


class ProtectNote:
    """The text goes on ``self`` in prepare_finish and to the bank in main."""

    def __init__(self, label: str, config: dict[str, Any]) -> None:
        self.label, self.config = label, config
        self.text: str | None = None

    def on_prepare_finish(self, resource: Resource, parameters: dict[str, Any],
                          checkpoint: Any, context: Any) -> None:
        self.text = resource.extra_info["text"]

    def on_main(self, parameters: dict[str, Any], checkpoint: Any, resource: Resource,
                context: Any) -> dict[str, Any]:
        _section(checkpoint, resource).update_object("note", {
            "text": self.text, "by": self.label, "config": self.config,
            "parameters": dict(parameters)})
        return {"by": self.label}


class RestoreNote:
    def __init__(self, label: str) -> None:
        self.label = label

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], *, new_resources: dict[str, Any],
                restore: Any) -> dict[str, Any]:
        saved = _section(checkpoint, resource).get_object("note")
        new_resources[resource.key] = {"text": saved["text"], "by": self.label,
                                       "config": saved["config"]}
        restore.update_resource_status(resource.type, resource.id, "restored",
                                       f"by {self.label}")
        return {"by": self.label}


class VerifyNote:
    def __init__(self, label: str) -> None:
        self.label = label

    def on_complete(self, verify: Any, resource: Resource, checkpoint: Any,
                    parameters: dict[str, Any], context: Any) -> dict[str, Any]:
        saved = _section(checkpoint, resource).get_object("note")
        verify.update_resource_status(resource.type, resource.id, "verified",
                                      f"{len(saved['text'])} chars, by {self.label}")
        return {"by": self.label}


class CopyNote:
    def __init__(self, label: str) -> None:
        self.label = label

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], *, checkpoint_copy: Any,
                target_checkpoint: Any) -> dict[str, Any]:
        checkpoint_copy.update_resource_status(resource.type, resource.id, "copied")
        return {"by": self.label, "parameters": dict(parameters)}


class DeleteNote:
    def __init__(self, label: str) -> None:
        self.label = label

    def on_main(self, resource: Resource, checkpoint: Any, context: Any,
                parameters: dict[str, Any]) -> dict[str, Any]:
        section = _section(checkpoint, resource)
        if section.has_object("note"):
            section.delete_object("note")
        return {"by": self.label}


class NotesA:
    """The guide's methods and nothing else (no on_failure: nothing to undo)."""

    label = "a"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    def get_supported_resources_types(self) -> list[str]:
        return [NOTE]

    def get_options_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"tag": {"type": "string"}},
                "additionalProperties": False}

    def get_restore_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object"}

    def get_verify_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object"}

    def get_saved_info_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object", "required": ["chars", "by"],
                "properties": {"chars": {"type": "integer"}, "by": {"type": "string"}}}

    def get_saved_info(self, metadata_store: Any, resource: Resource) -> Any:
        saved = metadata_store.get_object("note")
        return {"chars": len(saved["text"]), "by": saved["by"]}

    def get_protect_operation(self, resource: Resource) -> ProtectNote:
        return ProtectNote(self.label, self.config)

    def get_restore_operation(self, resource: Resource) -> RestoreNote:
        return RestoreNote(self.label)

    def get_verify_operation(self, resource: Resource) -> VerifyNote:
        return VerifyNote(self.label)

    def get_copy_operation(self, resource: Resource) -> CopyNote:
        return CopyNote(self.label)

    def get_delete_operation(self, resource: Resource) -> DeleteNote:
        return DeleteNote(self.label)


class NotesB(NotesA):
    label = "b"


class NotesBad(NotesA):
    label = "bad"

    def get_saved_info(self, metadata_store: Any, resource: Resource) -> Any:
        return {"chars": "many", "by": self.label}


class NoteShelf:
    """The protectable of notes: those its parameters hold, ``{"notes": {id: text}}``."""

    def get_resource_type(self) -> str:
        return NOTE

    def get_parent_resource_types(self) -> list[str]:
        return []

    def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Resource]:
        return []

    def list_resources(self, context: Any, parameters: Any = None) -> list[Resource]:
        notes = (parameters or {}).get("notes", {})
        return [Resource(NOTE, nid, name=f"note {nid}", extra_info={"text": text})
                for nid, text in notes.items()]

    def show_resource(self, context: Any, resource_id: str, parameters: Any = None) -> Resource:
        notes = (parameters or {}).get("notes", {})
        if resource_id not in notes:
            raise KeyError(f"no note {resource_id!r} on the shelf")
        return Resource(NOTE, resource_id, name=f"note {resource_id}",
                        extra_info={"text": notes[resource_id]})


def registry() -> Registry:
    return Registry({"notes-a": NotesA(), "notes-b": NotesB(), "notes-bad": NotesBad()},
                    [NoteShelf()])


def plan_json(provider: Any, **extra: Any) -> dict[str, Any]:
    """A plan of two notes served as ``provider`` chooses."""
    return {"name": "notes", "provider": provider,
            "resources": [{"type": NOTE, "id": "n1", "extra_info": {"text": "hello"}},
                          {"type": NOTE, "id": "n2", "extra_info": {"text": "world!"}}],
            "parameters": {NOTE: {"tag": "weekly"}}, **extra}
