"""The ``protectflow`` command: a thin shell over the library.

Exit codes: 0 success, 1 an operation ran and failed, 2 bad input (a plan, a
DAG file, a parameter, an option), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from protectflow.errors import ProtectflowError

__all__ = ["main"]

FORMATS = ("json", "dot", "svg", "png", "text")


def _compile(args: argparse.Namespace) -> int:
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.dag import dot, jsonio, summary

    dag = compile_plan(load_plan(args.plan), args.operation, prune=args.prune)
    if args.format == "json":
        data: str | bytes = jsonio.dumps(dag)
    elif args.format == "dot":
        data = dot.to_dot(dag)
    elif args.format == "text":
        data = summary.summary(dag)
    else:
        data = dot.render(dag, args.format)
    write_output(data, args.output)
    return 0


def write_output(data: str | bytes, output: str | None) -> None:
    if output is None or output == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, output)  # never a half-written file at OUTPUT
    except OSError as err:
        raise ProtectflowError(f"cannot write {output!r}: {err.strerror or err}; "
                               "give a path in a folder you can write to") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _validate(args: argparse.Namespace) -> int:
    from protectflow._cli_ops import load_parameters
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.dag import OPERATIONS

    plan = load_plan(args.plan)
    operations = OPERATIONS if args.operation == "all" else (args.operation,)
    extra = load_parameters(args.parameters)
    failures: dict[str, list[str]] = {}  # message -> the operations it fails
    for operation in operations:
        # The plan's parameters are protect's; the others take theirs from a file.
        parameters = plan.parameters if operation == "protect" else extra
        try:
            dag = compile_plan(plan, operation, parameters=parameters)
        except ProtectflowError as err:
            failures.setdefault(str(err), []).append(operation)
    if failures:
        for message, ops in failures.items():
            print(f"{', '.join(ops)}: {message}", file=sys.stderr)
        return 2
    print(f"{args.plan}: valid for {', '.join(operations)} "
          f"({len(dag.resources)} resources, {len(dag.nodes)} hooks)")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from protectflow.dag import OPERATIONS
    from protectflow.plugins import get_registry

    registry = get_registry()
    if args.json:
        out: dict[str, Any] = {}
        for name, plugin in registry.protections.items():
            types = list(plugin.get_supported_resources_types())
            out[name] = {
                "class": f"{type(plugin).__module__}.{type(plugin).__qualname__}",
                "resource_types": types,
                "schemas": {
                    t: {op: plugin.get_parameters_schema(op, t) for op in OPERATIONS[:3]}
                    for t in types
                },
            }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="protection plugins")
    for column in ("plugin", "resource type", "protectable", "protect options"):
        table.add_column(column)
    for name, plugin in registry.protections.items():
        for rtype in plugin.get_supported_resources_types():
            schema = plugin.get_options_schema(rtype)
            options = ", ".join(sorted(schema.get("properties", {}))) or "(any)"
            has = "yes" if registry.protectable_for(rtype) else "-"
            table.add_row(name, rtype, has, options)
    Console().print(table)
    print("full schemas: protectflow plugins --json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from protectflow._cli_ops import add_operation_parsers
    from protectflow._cli_run import add_executor_args, run_command
    from protectflow.dag import OPERATIONS

    parser = argparse.ArgumentParser(
        prog="protectflow",
        description="Protect, restore, verify, copy and delete a graph of resources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile a plan into a hook DAG")
    p.add_argument("plan", metavar="PLAN", help="the plan file (YAML or JSON)")
    p.add_argument("--operation", default="protect", choices=OPERATIONS)
    p.add_argument("--format", default="json", choices=FORMATS)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--prune", action="store_true", help="drop hooks the plugins do not implement")
    p.set_defaults(func=_compile)

    p = sub.add_parser("validate", help="check a plan and its parameters, running nothing")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--operation", default="protect", choices=(*OPERATIONS, "all"))
    p.add_argument("--parameters", metavar="FILE",
                   help="parameters of the other operations (protect's are the plan's)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("plugins", help="list the installed plugins, their types and schemas")
    p.add_argument("--json", action="store_true", help="print every schema as JSON")
    p.set_defaults(func=_plugins)

    p = sub.add_parser("run", help="run a plan (or a compiled hook DAG) on an executor")
    p.add_argument("plan", metavar="PLAN_OR_DAG", help="a plan, or a HookDAG .json file")
    p.add_argument("--operation", choices=OPERATIONS, help="for a plan (default: protect)")
    add_executor_args(p)
    p.set_defaults(func=run_command)
    add_operation_parsers(sub, add_executor_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ProtectflowError as err:
        print(f"protectflow: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("protectflow: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
