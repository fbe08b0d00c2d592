"""``protectflow compile``, ``validate`` and ``plugins``: the commands that
look at plans and plugins and run nothing.

A plan's ``parameters`` are its protect's; the other operations take theirs
from ``--parameters FILE`` (none without it), so that a plan with protect
parameters compiles for restore and verify too. ``validate`` also runs the
plugins' preflight checks (sources there, commands on PATH, restore targets
free) and reports every problem at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from protectflow.cli import results
from protectflow.cli.options import Subparsers, load_parameters
from protectflow.cli.output import print_json, stdout_console, write_output
from protectflow.compiler import Plan, compile_plan, load_plan
from protectflow.compiler.plan import partial_plan
from protectflow.dag import OPERATIONS, HookDAG, dot, jsonio, summary
from protectflow.errors import PlanError, PreflightError, ProtectflowError
from protectflow.operations.preflight import resource_problems
from protectflow.plugins import get_registry
from protectflow.plugins.contract import parameters_schema, supported_types
from protectflow.plugins.registry import ambiguity

__all__ = ["FORMATS", "add_parsers", "operation_parameters"]

FORMATS = ("json", "dot", "svg", "png", "text")
PARAMETERS_HELP = ("YAML or JSON parameters keyed by TYPE or TYPE#ID for restore and verify "
                   "(protect's are the plan's unless given)")


def operation_parameters(plan: Plan, operation: str, path: str | None
                         ) -> Mapping[str, Mapping[str, Any]]:
    """The parameters ``operation`` compiles with: the file's when given,
    else the plan's for protect and none for the other operations.

    Raises
    ------
    PlanError
        When the file cannot be read or is not a mapping of parameters.
    """
    if path is not None:
        return load_parameters(path, operation)
    return plan.parameters if operation == "protect" else {}


def add_parsers(sub: Subparsers) -> None:
    """Add ``compile``, ``validate`` and ``plugins`` to ``sub``."""
    p = sub.add_parser("compile", help="compile a plan into a hook DAG")
    p.add_argument("plan", metavar="PLAN", help="the plan file (YAML or JSON)")
    p.add_argument("--operation", default="protect", choices=OPERATIONS)
    p.add_argument("--format", default="json", choices=FORMATS)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--prune", action="store_true", help="drop hooks the plugins do not implement")
    p.add_argument("--parameters", metavar="FILE", help=PARAMETERS_HELP)
    p.add_argument("--full", action="store_true",
                   help="dot, svg, png: draw every hook however large the plan (by default a "
                   "large or wide plan is drawn one box per resource or per type, and a note "
                   "says so)")
    p.set_defaults(func=compile_command)

    p = sub.add_parser("validate", help="check a plan and its parameters, running nothing")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--operation", default="protect", choices=(*OPERATIONS, "all"))
    p.add_argument("--parameters", metavar="FILE", help=PARAMETERS_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=validate_command)

    p = sub.add_parser("plugins", help="list the installed plugins, their types and schemas")
    p.add_argument("--json", action="store_true", help="print every schema as JSON")
    p.set_defaults(func=plugins_command)


def compile_command(args: argparse.Namespace) -> int:
    """``protectflow compile PLAN``."""
    plan = load_plan(args.plan)
    parameters = operation_parameters(plan, args.operation, args.parameters)
    dag = compile_plan(plan, args.operation, parameters=parameters, prune=args.prune)
    if args.format == "json":
        write_output(jsonio.dumps(dag), args.output)
    elif args.format == "text":
        write_output(summary.summary(dag), args.output)
    else:
        write_output(_draw(dag, args), args.output)
    return 0


def _draw(dag: HookDAG, args: argparse.Namespace) -> str | bytes:
    """The picture in ``args.format``: every hook with ``--full``, else the
    view the plan's size affords, with a note on stderr when it is collapsed."""
    view = "hooks" if args.full else dot.choose_view(dag)
    note = dot.view_note(dag, view)
    if note and not args.quiet:
        print(f"protectflow: note: {note}", file=sys.stderr)
    if args.format == "dot":
        return dot.to_dot(dag, view=view, note=note)
    return dot.render(dag, args.format, view=view)


def validate_command(args: argparse.Namespace) -> int:
    """``protectflow validate PLAN``: every error of every operation asked
    for, the plugins' preflight problems included, on stderr (or as JSON).

    The stages run as far as they can: a plan that breaks its schema still
    has its well-formed resources' references, plugins and parameters
    checked (:func:`~protectflow.compiler.plan.partial_plan`); a plan that
    reads but fails to compile gets no preflight (which needs its DAG)."""
    refused: PlanError | None = None
    try:
        plan = load_plan(args.plan)
    except PlanError as err:
        part = partial_plan(args.plan)
        if part is None:
            raise
        plan, refused = part, err
    operations = OPERATIONS if args.operation == "all" else (args.operation,)
    outcomes: dict[str, HookDAG | ProtectflowError] = {}
    for operation in operations:
        outcome = _validate(plan, operation, args.parameters, preflight=refused is None)
        if refused is not None:
            also = "" if isinstance(outcome, HookDAG) else (
                f"\nand in its {len(plan.resources)} resources that read:\n{outcome}")
            outcome = PlanError(f"{refused}{also}")
        outcomes[operation] = outcome
    if args.json:
        print_json(results.validation_result(args.plan, outcomes), sort_keys=False)
    failures: dict[str, list[str]] = {}  # message -> the operations it fails
    for operation, outcome in outcomes.items():
        if isinstance(outcome, ProtectflowError):
            failures.setdefault(str(outcome), []).append(operation)
    if failures:
        for message, ops in failures.items():
            print(f"{', '.join(ops)}: {message}", file=sys.stderr)
        print(f"  (checked: {_stages(refused is not None)})", file=sys.stderr)
        return 2
    if not args.json:
        dags = [o for o in outcomes.values() if isinstance(o, HookDAG)]
        print(f"{args.plan}: valid for {', '.join(operations)} "
              f"({len(dags[-1].resources)} resources, {len(dags[-1].nodes)} hooks)")
    return 0


def _validate(plan: Plan, operation: str, parameters_file: str | None, *,
              preflight: bool) -> HookDAG | ProtectflowError:
    """The DAG of ``plan`` for ``operation``, or every problem found with it:
    plugins and parameters together, then (with ``preflight``) the plugins'
    checks of the resources."""
    # The plan's parameters are protect's; the others take theirs from a file.
    try:
        parameters = (plan.parameters if operation == "protect"
                      else load_parameters(parameters_file, operation))
        dag = compile_plan(plan, operation, parameters=parameters)
        problems = resource_problems(dag) if preflight else []
    except ProtectflowError as err:
        return err
    return dag if not problems else PreflightError(f"the {operation} could not start:", problems)


def _stages(refused: bool) -> str:
    """Which checks ran, for the closing line of a failed ``validate``."""
    if refused:
        return ("the plan's schema and references; the plugins and parameters of the "
                "resources that read (the preflight checks run once the plan is valid)")
    return ("the plan; its resource graph, plugins and parameters; the preflight checks "
            "where those passed")


def plugins_command(args: argparse.Namespace) -> int:
    """``protectflow plugins``: a table, or every schema as JSON. A type
    several plugins claim with no default choice is marked, with how a plan
    chooses (a provider)."""
    registry = get_registry()
    if args.json:
        print_json(results.plugins_result(registry), sort_keys=False)
        return 0
    conflicts = registry.conflicts()
    table = Table(title="protection plugins")
    for column in ("plugin", "resource type", "protectable", "protect options"):
        table.add_column(column, overflow="fold")
    for name, plugin in registry.protections.items():
        for rtype in supported_types(plugin):
            schema = parameters_schema(plugin, "protect", rtype)
            options = ", ".join(sorted(schema.get("properties", {}))) or "(any)"
            has = "yes" if rtype in registry.protectables else "-"
            shown = f"{rtype} (!)" if rtype in conflicts else rtype
            table.add_row(name, shown, has, options)
    stdout_console().print(table)
    for rtype, names in conflicts.items():
        print(f"(!) {ambiguity(rtype, names)}")
    print("full schemas: protectflow plugins --json")
    return 0
