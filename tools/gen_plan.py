#!/usr/bin/env python3
"""Write a generated tenant plan of about N resources for the sim plugins.

    python tools/gen_plan.py 1000 --seed 1 -o tenant-1000.json

Servers have one to three volumes, some volumes are shared by two servers,
images are shared by many servers; projects hold servers, networks, shares
and databases. The same N and seed give the same plan.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any


def generate(n: int, seed: int = 0, *, main_seconds: float | None = None) -> dict[str, Any]:
    """A tenant plan of exactly ``n`` resources (``n`` >= 1)."""
    rng = random.Random(seed)
    resources: list[dict[str, Any]] = []

    def add(rtype: str, rid: str, deps: list[str] | None = None) -> str:
        item: dict[str, Any] = {"type": rtype, "id": rid, "name": rid}
        if deps:
            item["depends_on"] = deps
        resources.append(item)
        return f"{rtype}#{rid}"

    projects = max(1, n // 1000)
    images = max(1, n // 40)
    networks = max(1, n // 100)
    shares = n // 200
    databases = n // 200
    rest = n - projects - images - networks - shares - databases
    image_keys = [add("OS::Glance::Image", f"img-{i}") for i in range(images)]
    net_keys = [add("OS::Neutron::Network", f"net-{i}") for i in range(networks)]
    top: list[str] = []
    top += [add("OS::Manila::Share", f"share-{i}") for i in range(shares)]
    top += [add("OS::Trove::Instance", f"db-{i}") for i in range(databases)]
    volumes = 0
    previous: list[str] = []
    while rest > 0:
        s = len([k for k in top if "Server" in k])
        want = min(rng.randint(1, 3), rest - 1)
        mine = [add("OS::Cinder::Volume", f"vol-{volumes + j}") for j in range(want)]
        volumes += want
        rest -= want + 1
        # About one server in five also mounts a volume of the server before.
        shared = [previous[0]] if previous and rng.random() < 0.2 else []
        deps = mine + shared + [rng.choice(image_keys)]
        if rest >= 0 and want >= 0:
            deps.append(rng.choice(net_keys))
        top.append(add("OS::Nova::Server", f"srv-{s}", sorted(set(deps))))
        previous = mine
    top += net_keys
    for p in range(projects):
        mine = top[p::projects]
        add("OS::Keystone::Project", f"project-{p}", sorted(mine))
    resources = resources[:n] if len(resources) > n else resources
    plan: dict[str, Any] = {"name": f"tenant-{n}-seed{seed}", "resources": resources}
    if main_seconds is not None:
        plan["parameters"] = {t: {"main_seconds": main_seconds} for t in _types(resources)}
    return plan


def _types(resources: list[dict[str, Any]]) -> list[str]:
    return sorted({r["type"] for r in resources})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of resources (at least 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", help="file to write (.json or .yaml); default stdout")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("n must be at least 1")
    plan = generate(args.n, args.seed)
    if args.output and args.output.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(plan, sort_keys=False)
    else:
        text = json.dumps(plan, indent=1) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
