#!/usr/bin/env python3
"""Benchmark the compiler: plan file -> validated HookDAG -> JSON / DOT on disk.

    python tools/bench_compile.py                 # 1,000, 10,000 and 100,000 resources
    python tools/bench_compile.py --sizes 1000 --repeat 3

Each size runs in a fresh process (so peak memory is that size's own), first
protectflow, then, side by side on the same plan, the obvious networkx way of
doing the same: a DiGraph of the hooks, ``is_directed_acyclic_graph``, and
``node_link_data`` written as JSON. Target: 100,000 resources from plan file to
JSON on disk in at most 10 s with at most 1.5 GB peak memory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_protectflow(plan_path: str, out_dir: str) -> dict[str, float]:
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.dag import dot, jsonio

    t0 = time.perf_counter()
    dag = compile_plan(load_plan(plan_path))
    t1 = time.perf_counter()
    jsonio.dump(dag, os.path.join(out_dir, "dag.json"))
    t2 = time.perf_counter()
    with open(os.path.join(out_dir, "dag.dot"), "w", encoding="utf-8") as f:
        f.write(dot.to_dot(dag))
    t3 = time.perf_counter()
    return {
        "hooks": len(dag.nodes),
        "edges": len(dag.edges),
        "plan_to_dag_s": t1 - t0,
        "plan_to_json_s": t2 - t0,
        "dot_s": t3 - t2,
        "json_mb": os.path.getsize(os.path.join(out_dir, "dag.json")) / 1e6,
        "peak_mb": _peak_mb(),
    }


def measure_networkx(plan_path: str, out_dir: str) -> dict[str, float]:
    """The same hooks and rules, built the obvious way on networkx."""
    import networkx as nx

    hooks = ("prepare_begin", "prepare_finish", "main", "complete")
    t0 = time.perf_counter()
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    g = nx.DiGraph()
    for r in plan["resources"]:
        key = f"{r['type']}#{r['id']}"
        ids = [f"{key}/{h}" for h in hooks]
        g.add_nodes_from(ids)
        g.add_edges_from(itertools.pairwise(ids))
        for child in r.get("depends_on", ()):
            g.add_edge(f"{key}/prepare_begin", f"{child}/prepare_begin")
            g.add_edge(f"{child}/prepare_finish", f"{key}/prepare_finish")
            g.add_edge(f"{child}/complete", f"{key}/complete")
    assert nx.is_directed_acyclic_graph(g)
    t1 = time.perf_counter()
    with open(os.path.join(out_dir, "nx.json"), "w", encoding="utf-8") as f:
        json.dump(nx.node_link_data(g, edges="edges"), f)
    t2 = time.perf_counter()
    return {"plan_to_dag_s": t1 - t0, "plan_to_json_s": t2 - t0, "peak_mb": _peak_mb()}


def _child(which: str, plan_path: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        fn = measure_protectflow if which == "protectflow" else measure_networkx
        print(json.dumps(fn(plan_path, out)))


def _run_child(which: str, plan_path: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, plan_path],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the best is kept")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-networkx", action="store_true", help="skip the networkx baseline")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    sys.path.insert(0, HERE)
    from gen_plan import generate

    header = (
        f"{'resources':>9} {'hooks':>8} {'edges':>8} | {'plan->DAG':>9} {'->JSON':>7} "
        f"{'DOT':>6} {'JSON MB':>8} {'peak MB':>8} | {'networkx->JSON':>14} {'peak MB':>8} "
        f"{'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            plan_path = os.path.join(tmp, "plan.json")
            with open(plan_path, "w", encoding="utf-8") as f:
                json.dump(generate(n, args.seed), f)
            pf = min((_run_child("protectflow", plan_path) for _ in range(args.repeat)),
                     key=lambda r: r["plan_to_json_s"])
            line = (
                f"{n:>9} {pf['hooks']:>8.0f} {pf['edges']:>8.0f} | {pf['plan_to_dag_s']:>8.2f}s "
                f"{pf['plan_to_json_s']:>6.2f}s {pf['dot_s']:>5.2f}s {pf['json_mb']:>8.1f} "
                f"{pf['peak_mb']:>8.0f} |"
            )
            if not args.no_networkx:
                nx_ = _run_child("networkx", plan_path)
                ratio = nx_["plan_to_json_s"] / pf["plan_to_json_s"]
                line += f" {nx_['plan_to_json_s']:>13.2f}s {nx_['peak_mb']:>8.0f} {ratio:>5.1f}x"
            print(line, flush=True)
    print("\nplan->DAG: plan file read, schema-checked and compiled to a validated HookDAG;")
    print("->JSON: the same plus the DAG written to disk; ratio: networkx time / protectflow time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
