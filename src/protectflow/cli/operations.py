"""``protectflow protect``, ``restore``, ``verify``, ``copy``, ``delete`` and
``resume``: each is one call into :mod:`protectflow.operations`, with the
executor, progress and report files the flags ask for, then its outcome
(:mod:`.outcome`): a summary, the result as JSON, or what to resume."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from protectflow import operations
from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.cli import results
from protectflow.cli.banks import plan_file, resolve_checkpoint
from protectflow.cli.config import Config, Settings, named_bank
from protectflow.cli.options import (
    BANK_HELP,
    Subparsers,
    add_bank_args,
    add_executor_args,
    bank_from_args,
    executor_from_args,
    load_parameters,
    settings,
)
from protectflow.cli.outcome import finish
from protectflow.cli.output import print_json, write_report_files
from protectflow.cli.preview import dry_run_protect, dry_run_restore
from protectflow.cli.progress import progress
from protectflow.compiler import Plan, load_plan
from protectflow.errors import BankError, BankLockedError, ParameterError, PluginError
from protectflow.operations import OperationResult
from protectflow.operations.outcomes import total_stats
from protectflow.operations.preview import preview_protect
from protectflow.plugins import get_registry
from protectflow.plugins.providers import resolve_provider

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers) -> None:
    """Add the operation commands to ``sub``."""
    p = sub.add_parser("protect", help="protect a plan's resources into a new checkpoint")
    p.add_argument("plan", metavar="PLAN")
    add_bank_args(p, BANK_HELP.replace("(default: ", "(default: the plan's or its provider's, "))
    p.add_argument("--no-fsync", dest="fsync", action="store_false",
                   help="write a local bank without fsync: faster, as safe if the process "
                   "dies, but a power loss may take the checkpoint with it")
    p.add_argument("--reread", action="store_true",
                   help="read every file again rather than trust the previous checkpoint "
                   "for those unchanged, and read back every chunk it would reuse, storing "
                   "a damaged one again (sets the 'reread' parameter of every plugin "
                   "that takes one)")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be read (files new, changed, unmodified); write "
                   "nothing, make no checkpoint")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG",
                   help="tag the checkpoint (repeat for more; the plan's 'tags' are added)")
    add_executor_args(p)
    p.set_defaults(func=protect_command)

    for name, helptext in (("restore", "restore a checkpoint's resources"),
                           ("verify", "check that a checkpoint's data is whole")):
        p = _checkpoint_parser(sub, name, helptext)
        p.add_argument("--parameters", metavar="FILE",
                       help="YAML or JSON parameters keyed by TYPE or TYPE#ID")
        if name == "restore":
            p.add_argument("--target", metavar="DIR", help="restore into this folder (sets "
                           "the 'target' parameter of every plugin that takes one)")
            p.add_argument("--force", action="store_true",
                           help="replace what is already at a resource's destination")
            p.add_argument("--allow-other-owner", action="store_true",
                           help="restore into a folder another user owns (or below one); "
                           "refused by default, since that user could swap what the "
                           "restore writes (no link is followed either way)")
            _add_selection_args(p)
        else:
            depth = p.add_mutually_exclusive_group()
            depth.add_argument("--read-data", dest="read_data", action="store_true",
                               default=True, help="the full check (the default): every "
                               "object authenticated, then the plugins read every chunk")
            depth.add_argument("--metadata-only", dest="read_data", action="store_false",
                               help="authenticate every object and find every chunk, "
                               "reading none (like `restic check`); runs no plugin")
        add_executor_args(p)
        p.set_defaults(func=restore_or_verify_command, operation=name)

    p = _checkpoint_parser(sub, "copy", "copy a checkpoint into another bank")
    p.add_argument("--to", required=True, metavar="BANK",
                   help="the bank to copy into: a [banks] name of the config file, a "
                   "folder or an fsspec URL (as --bank)")
    p.add_argument("--to-password-file", metavar="FILE",
                   help="as --password-file, for the bank copied into")
    add_executor_args(p)
    p.set_defaults(func=copy_command)

    p = _checkpoint_parser(sub, "delete", "delete a checkpoint's data (its record stays)")
    add_executor_args(p)
    p.set_defaults(func=delete_command)

    p = _checkpoint_parser(sub, "resume", "continue a checkpoint's interrupted or failed "
                           "operation from its journal (any executor)", plan_help=(
                               "the plan a protect was started with: its bank, and a check "
                               "that it did not change (default: the plan saved in the "
                               "checkpoint)"))
    p.add_argument("--target", metavar="DIR", help="a restore's folder, as the restore was "
                   "given it: a resume takes its target from you, never from the bank alone")
    p.add_argument("--force", action="store_true", help="as the restore was given it")
    p.add_argument("--parameters", metavar="FILE", help="a restore's or verify's parameters, "
                   "as it was given them (they must match its journal)")
    add_executor_args(p)
    p.set_defaults(func=resume_command)


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    """restore's ``--resource``, ``--no-deps``, ``--include``, ``--exclude``,
    ``--in-place`` and ``--dry-run``."""
    p.add_argument("--resource", dest="resources", metavar="TYPE#ID", action="append",
                   help="restore only this resource and what it depends on (repeatable)")
    p.add_argument("--no-deps", dest="dependencies", action="store_false",
                   help="with --resource: not the resources it depends on")
    p.add_argument("--include", action="append", default=[], metavar="PATTERN",
                   help="restore only the files matching this glob (repeatable; without "
                   "'/' it matches a name at any depth, with '/' the path from the "
                   "resource's root; a folder brings what is under it)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out the files and folders matching this glob (repeatable)")
    p.add_argument("--in-place", action="store_true",
                   help="restore to where each resource was protected from, refusing "
                   "(unless --force) to overwrite what differs; never through a symlink")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be restored, and where; write nothing")


def _checkpoint_parser(sub: Subparsers, name: str, helptext: str, *,
                       plan_help: str = "a plan file: its bank is the checkpoint's"
                       ) -> argparse.ArgumentParser:
    """A command on one checkpoint: its ID (or a unique prefix), ``--bank``
    and ``--plan`` (its own options and the executor's follow)."""
    p = sub.add_parser(name, help=helptext)
    p.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    add_bank_args(p)
    p.add_argument("--plan", metavar="PLAN", help=plan_help)
    return p


def _run(args: argparse.Namespace, call: Callable[..., OperationResult], *call_args: Any,
         chosen: Settings | None = None, estimate: int | None = None,
         scan: Callable[[], int | None] | None = None, **kwargs: Any) -> OperationResult:
    """Run ``call`` (an operation) with the executor and progress the flags
    ask for (``chosen``: the command's settings, if it has them already;
    ``estimate`` and ``scan``: the bytes it should process, see
    :func:`.progress.progress`), and write the ``--report`` and ``--trace`` files."""
    chosen = chosen or settings(args, getattr(args, "plan_bank", None))
    executor, run_settings = executor_from_args(args, chosen)
    with progress(f"{call.__name__} ({executor.name})", quiet=args.quiet, estimate=estimate,
                  scan=scan) as listener:
        if listener is not None:
            run_settings = attrs.evolve(run_settings, run=attrs.evolve(
                run_settings.run, listeners=[listener]))
        result = call(*call_args, executor=executor, settings=run_settings, **kwargs)
    write_report_files(result.report, args)
    return result


def protect_command(args: argparse.Namespace) -> int:
    """``protectflow protect PLAN``."""
    plan = load_plan(args.plan)
    # The plan's provider, resolved once for the whole command.
    provider = resolve_provider(plan.provider, get_registry())
    # The plan's bank, else its provider's, ranks as the plan's (after --bank).
    chosen = settings(args, plan.bank or provider.bank)
    bank = bank_from_args(args, chosen.bank, fsync=args.fsync)
    extra: dict[str, Any] = {"parameters": _with_reread(plan)} if args.reread else {}
    if args.dry_run:
        return dry_run_protect(args, plan, bank if bank.exists() else None,
                               extra.get("parameters"))
    result = _run(args, operations.protect, plan, chosen=chosen, bank=bank, provider=provider,
                  tags=args.tags, estimate=None if args.quiet else previous_size(bank, plan.name),
                  scan=lambda: _scanned_size(plan, extra.get("parameters")), **extra)
    return finish(args, result, f"protect of {plan.name}")


def previous_size(bank: Bank, plan: str) -> int | None:
    """The size of the plan's last checkpoint in ``bank`` that reports one:
    what the next protect should process, for its ETA (None: none)."""
    try:
        if not bank.exists():
            return None
        for checkpoint in CheckpointStore(bank).list(plan=plan, limit=5):
            total = total_stats(checkpoint.resources)
            if total is not None:
                return total.size
    except BankError:
        return None
    return None


def _scanned_size(plan: Plan, parameters: Mapping[str, Mapping[str, Any]] | None) -> int:
    """The bytes a protect of ``plan`` will process, from a scan of its sources."""
    found = preview_protect(plan, bank=None, parameters=parameters)
    return sum(p.stats.size for p in found if p.stats is not None)


def _store(args: argparse.Namespace) -> tuple[CheckpointStore, Plan | None]:
    """The bank of a checkpoint command, its id resolved, and the ``--plan``
    file read (once); ``args.plan_bank`` set for the settings of the run."""
    plan = plan_file(args.plan)
    args.plan_bank = plan.bank if plan is not None else None
    return resolve_checkpoint(args, plan=plan), plan


def _checkpoint(args: argparse.Namespace) -> Checkpoint:
    """The checkpoint of a checkpoint command, its record read (once: the
    operation takes this object)."""
    store, _ = _store(args)
    return store.get(args.checkpoint)


def restore_or_verify_command(args: argparse.Namespace) -> int:
    """``protectflow restore ID`` and ``protectflow verify ID``."""
    store, _ = _store(args)
    if args.operation == "verify" and not args.read_data:
        return check_command(args, store.bank)
    parameters = load_parameters(args.parameters, args.operation)
    if args.operation == "verify":  # its metadata check runs before the record is read
        result = _run(args, operations.verify, args.checkpoint, bank=store.bank,
                      parameters=parameters)
    else:
        checkpoint = store.get(args.checkpoint)
        parameters = _with_selection(args, checkpoint, parameters)
        if not args.target and not args.in_place:
            _require_target(checkpoint, parameters)
        if args.allow_other_owner:
            parameters = _with_flag(checkpoint, parameters, "allow_other_owner")
        if args.dry_run:
            return dry_run_restore(args, store, checkpoint, parameters)
        whole = not (args.resources or args.include or args.exclude)
        total = total_stats(checkpoint.resources) if whole and not args.quiet else None
        result = _run(args, operations.restore, checkpoint, parameters=parameters,
                      resources=args.resources, dependencies=args.dependencies,
                      estimate=None if total is None else total.size)
    if not args.json:
        _print_problems(result.problems)
    return finish(args, result, f"{args.operation} of checkpoint {args.checkpoint}")


def check_command(args: argparse.Namespace, bank: Bank) -> int:
    """``protectflow verify ID --metadata-only``: every problem printed; 1 if any."""
    found = operations.check(args.checkpoint, bank=bank)
    if args.json:
        print_json(results.check_result(found, bank.url), sort_keys=False)
        return 1 if found.problems else 0
    print(f"checkpoint {args.checkpoint}: {found.objects} object(s) authenticated, "
          f"{found.chunks} chunk(s) found")
    _print_problems(found.problems)
    if found.problems:
        print(f"metadata check failed: {len(found.problems)} problem(s)")
        return 1
    print("metadata check passed (no chunk read: run without --metadata-only to read them)")
    return 0


def _print_problems(problems: tuple[str, ...]) -> None:
    for problem in problems:
        print(f"problem: {problem}")


def _with_selection(args: argparse.Namespace, checkpoint: Checkpoint,
                    parameters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """restore's flags as the parameters of every type whose restore schema
    takes them: ``target``, ``force``, ``in_place``, ``include``, ``exclude``
    (what ``--parameters`` says for a type wins)."""
    flags = {"target": args.target, "force": True if args.force else None,
             "in_place": True if args.in_place else None, "include": args.include or None,
             "exclude": args.exclude or None}
    registry = get_registry()
    out = {k: dict(v) for k, v in parameters.items()}
    for rtype in sorted(checkpoint.resource_graph.types()):
        try:
            name = registry.plugin_name_for(rtype)
        except PluginError:  # several plugins: the checkpoint's provider chooses, later
            continue
        if name is None:
            continue
        props = registry.plugin(name).get_restore_schema(rtype).get("properties", {})
        for key, value in flags.items():
            if value is not None and key in props:
                out.setdefault(rtype, {}).setdefault(key, value)
    return out


def _with_target(args: argparse.Namespace, checkpoint: Checkpoint,
                 parameters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Give ``--target`` (and ``--force``) to every type whose restore schema
    takes a ``target``."""
    registry = get_registry()
    types = checkpoint.resource_graph.types()
    out = {k: dict(v) for k, v in parameters.items()}
    for rtype in sorted(types):
        name = registry.plugin_name_for(rtype)
        if name is None:
            continue
        props = registry.plugin(name).get_restore_schema(rtype).get("properties", {})
        if "target" in props:
            out.setdefault(rtype, {}).setdefault("target", args.target)
            if getattr(args, "force", False) and "force" in props:
                out[rtype].setdefault("force", True)
    return out


def _with_flag(checkpoint: Checkpoint, parameters: Mapping[str, Mapping[str, Any]],
               name: str) -> dict[str, dict[str, Any]]:
    """Set the boolean ``name`` for every type whose restore schema takes it."""
    registry = get_registry()
    out = {k: dict(v) for k, v in parameters.items()}
    for rtype in sorted(checkpoint.resource_graph.types()):
        plugin = registry.plugin_name_for(rtype)
        if plugin is not None and name in registry.plugin(plugin).get_restore_schema(
                rtype).get("properties", {}):
            out.setdefault(rtype, {}).setdefault(name, True)
    return out


def _require_target(checkpoint: Checkpoint,
                    parameters: Mapping[str, Mapping[str, Any]]) -> None:
    """Say that ``--target DIR`` is needed, rather than the schema's words,
    when a type whose restore requires a ``target`` is given none.

    Raises
    ------
    ParameterError
        Naming the types without one, and the two ways to give it.
    """
    registry = get_registry()
    lacking = []
    for rtype in sorted(checkpoint.resource_graph.types()):
        try:
            name = registry.plugin_name_for(rtype)
        except PluginError:  # several plugins: the checkpoint's provider chooses, later
            continue
        schema = registry.plugin(name).get_restore_schema(rtype) if name else {}
        # a target is needed where required, or where only --in-place replaces it
        if "target" not in schema.get("required", ()) and "in_place" not in schema.get(
                "properties", {}):
            continue
        given = [v for k, v in parameters.items() if k == rtype or k.startswith(rtype + "#")]
        if not any("target" in v or v.get("in_place") for v in given):
            lacking.append(rtype)
    if lacking:
        raise ParameterError(
            f"the restore of checkpoint {checkpoint.id} needs a folder to restore into: give "
            "--target DIR (each resource goes into DIR/<resource id>), --in-place (where it "
            f"was protected from), or a 'target' in --parameters FILE for {', '.join(lacking)}")


def _with_reread(plan: Plan) -> dict[str, dict[str, Any]]:
    """The plan's parameters, with ``reread`` for every type whose protect
    options take it (the plan's own ``TYPE#ID`` settings still win)."""
    registry = get_registry()
    out = {k: dict(v) for k, v in plan.parameters.items()}
    types = {r.resource.type for r in plan.resources} | {d.type for d in plan.discover}
    for rtype in sorted(types):
        name = registry.plugin_name_for(rtype)
        if name is None:
            continue
        if "reread" in registry.plugin(name).get_options_schema(rtype).get("properties", {}):
            out.setdefault(rtype, {})["reread"] = True
    return out


def copy_command(args: argparse.Namespace) -> int:
    """``protectflow copy ID --to URL``."""
    checkpoint = _checkpoint(args)
    # --to is read as --bank is: a [banks] name first, else a folder or URL.
    to = Bank(named_bank(args.to, getattr(args, "config", None) or Config()),
              password_file=args.to_password_file)
    try:
        result = _run(args, operations.copy, checkpoint, to=to)
    except BankLockedError as err:
        if to.url not in str(err):
            raise
        # The bank copied into takes its password file from --to-password-file.
        raise BankLockedError(str(err).replace("--password-file", "--to-password-file"),
                              err.problem) from err
    return finish(args, result, f"copy of checkpoint {args.checkpoint}")


def delete_command(args: argparse.Namespace) -> int:
    """``protectflow delete ID``."""
    result = _run(args, operations.delete, _checkpoint(args))
    return finish(args, result, f"delete of checkpoint {args.checkpoint}")


def resume_command(args: argparse.Namespace) -> int:
    """``protectflow resume ID``."""
    store, plan = _store(args)
    checkpoint = store.get(args.checkpoint)
    # A restore's or verify's parameters, as the operator gives them: compared
    # with its journal's, never taken from it.
    parameters = load_parameters(args.parameters, "restore")
    if args.target:
        parameters = _with_target(args, checkpoint, parameters)
    # The plan file read once: the one --plan names (as read), else a name or nothing.
    result = _run(args, operations.resume, checkpoint, parameters=parameters,
                  plan=plan if plan is not None else args.plan)
    return finish(args, result, f"resumed {result.operation} of checkpoint {args.checkpoint}")
