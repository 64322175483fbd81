#!/usr/bin/env python3
"""Renders the largest topology and function environments template.yaml's parameters allow and
checks them against the limits they must fit (docs/topology-size.md):

- the topology, the value of the SSM parameter TopologyParameter: 8192 bytes (the Advanced tier's
  limit; the template's Intelligent-Tiering picks Advanced above the Standard tier's 4096);
- each function's environment variables, as Lambda measures them (one JSON object: names,
  values, quotes, commas and brackets): 4096 bytes.

    topology_size.py [--template template.yaml] [--largest tests/deploy/params/largest-arc.json] [--json]

How the largest is found, so that it is the largest and not a large example:
1. Every parameter whose value reaches the topology or an environment variable must be bounded: a
   String by MaxLength (an AllowedPattern is not a bound this script can read) or AllowedValues, a
   Number by MaxValue. An unbounded one fails the check, naming it.
2. The largest parameter file holds, for each such String, a value of exactly MaxLength that the
   template accepts (AllowedPattern, Rules), and for each Number its longest value (MinValue or
   MaxValue); the script checks both, so a MaxLength raised later without a longer value here fails.
3. It is rendered with the longest stack name (128 characters) and partition name (aws-us-gov),
   in each shape: ARC with existing resources (the file), ARC with created resources, and the
   health_check backend. Each AllowedValues parameter is tried with each of its values: the
   differences add up (they are independent substitutions), and the largest total is compared.
Exit status 0 when everything fits, 1 when not (or when a bound is missing), with the figures.
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cfnlint.decode import decode  # noqa: E402

import render_topology  # noqa: E402

SSM_VALUE_LIMIT = 8192  # Advanced tier
SSM_STANDARD_LIMIT = 4096
LAMBDA_ENVIRONMENT_LIMIT = 4096
LONGEST_STACK_NAME = "s" * 128  # CloudFormation allows 128 characters
LONGEST_PARTITION = "aws-us-gov"
ACCOUNT = "123456789012"
# Parameters that choose a shape of the template rather than being copied into it.
SHAPES = {
    "arc, existing ARC resources": {},
    # CloudFormation has the ARC types only in us-east-1 and us-west-2 (the template's Rules), and
    # the stack's RECOVERY_CONTROL health checks replace RegionNHealthCheckId.
    "arc, ARC resources created by this stack": {
        "ArcResources": "create",
        "Region1": "us-west-2",
        **{f"Region{i}HealthCheckId": "" for i in range(1, 5)},
        "ArcClusterArn": "",
        "ArcControlPanelArn": "",
        "ArcSafetyRuleArn": "",
        **{f"Region{i}RoutingControlArn": "" for i in range(1, 5)},
    },
    "health_check": {
        "RoutingBackend": "health_check",
        "ArcClusterArn": "",
        "ArcClusterEndpoints": "",
        "ArcControlPanelArn": "",
        "ArcSafetyRuleArn": "",
        **{f"Region{i}RoutingControlArn": "" for i in range(1, 5)},
    },
}
SHAPE_PARAMETERS = {"RoutingBackend", "ArcResources"}


def referenced_parameters(node, parameters):
    """Names of `parameters` a template node copies into its value (Ref, ${Name} in Sub)."""
    found = set()

    def walk(n):
        if isinstance(n, dict):
            for key, arg in n.items():
                if key == "Ref" and isinstance(arg, str) and arg in parameters:
                    found.add(arg)
                elif key == "Fn::If" and isinstance(arg, list):
                    walk(arg[1:])  # the condition picks, it is not copied
                else:
                    walk(arg)
        elif isinstance(n, list):
            for x in n:
                walk(x)
        elif isinstance(n, str):
            found.update(name for name in re.findall(r"\$\{([^}!.]+)\}", n) if name in parameters)

    walk(node)
    return found


def copied_parameters(template):
    """The parameters that reach the topology or a function's environment."""
    parameters = template["Parameters"]
    nodes = [template["Resources"]["TopologyParameter"]["Properties"]["Value"]]
    nodes.append(template.get("Globals", {}).get("Function", {}).get("Environment", {}))
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            nodes.append(resource.get("Properties", {}).get("Environment", {}))
    # A Sub's variables may be other parameters' values (Cell1 -> Region1AutoScalingGroup...):
    # referenced_parameters walks the whole node, variables included.
    return sorted(set().union(*(referenced_parameters(n, parameters) for n in nodes)))


def check_bounds(template, largest):
    """Problems with the bounds and with the largest file (empty when both are right)."""
    problems = []
    for name in copied_parameters(template):
        spec = template["Parameters"][name]
        value = str(largest.get(name, spec.get("Default", "")))
        if "AllowedValues" in spec or name in SHAPE_PARAMETERS:
            continue
        if spec.get("Type", "String") == "Number":
            if "MaxValue" not in spec:
                problems.append(f"{name}: a Number that reaches the topology needs MaxValue")
                continue
            longest = max(len(str(int(spec.get("MinValue", 0)))), len(str(int(spec["MaxValue"]))))
            if len(value) != longest:
                problems.append(f"{name}: the largest file gives `{value}`; its longest value has {longest} digits")
        elif "MaxLength" not in spec:
            problems.append(f"{name}: a String that reaches the topology or an environment needs MaxLength")
        elif len(value) != int(spec["MaxLength"]):
            problems.append(
                f"{name}: the largest file's value has {len(value)} characters, MaxLength is {spec['MaxLength']}"
            )
    return problems


def render(template, params):
    return render_topology.render(template, params, None, ACCOUNT, LONGEST_PARTITION, LONGEST_STACK_NAME, False)


def measures(out):
    return {
        "topology": len(out["topology"].encode()),
        **{f"environment of {fn}": f["environment_bytes"] for fn, f in out["functions"].items()},
    }


def largest_of_shape(template, params):
    """The largest measures of one shape: the file's values, plus for each AllowedValues parameter
    the largest increase any of its values gives."""
    base = measures(render(template, params))
    total = dict(base)
    for name in copied_parameters(template):
        spec = template["Parameters"][name]
        if "AllowedValues" not in spec or name in SHAPE_PARAMETERS:
            continue
        increase = dict.fromkeys(base, 0)
        for allowed in spec["AllowedValues"]:
            try:
                varied = measures(render(template, {**params, name: str(allowed)}))
            except render_topology.Rejected:
                continue  # a value the Rules refuse with the other values (e.g. a ceiling without raise)
            for key, size in varied.items():
                increase[key] = max(increase[key], size - base[key])
        for key, more in increase.items():
            total[key] += more
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--largest", default="tests/deploy/params/largest-arc.json")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    template, matches = decode(args.template)
    if matches or template is None:
        raise SystemExit(f"cannot load {args.template}: {[str(m) for m in matches]}")
    with open(args.largest) as f:
        largest = json.load(f)

    problems = check_bounds(template, largest)
    shapes = {}
    for shape, overrides in SHAPES.items():
        try:
            shapes[shape] = largest_of_shape(template, {**largest, **overrides})
        except render_topology.Rejected as rejected:
            problems.append(f"shape `{shape}`: the template refuses the largest values: {rejected.args[0]}")
    worst = {}
    for sizes in shapes.values():
        for key, size in sizes.items():
            worst[key] = max(worst.get(key, 0), size)
    for key, size in sorted(worst.items()):
        limit = SSM_VALUE_LIMIT if key == "topology" else LAMBDA_ENVIRONMENT_LIMIT
        if size > limit:
            problems.append(f"{key}: the largest is {size} bytes, over the limit of {limit}")
    tier = template["Resources"]["TopologyParameter"]["Properties"].get("Tier", "Standard")
    if worst.get("topology", 0) > SSM_STANDARD_LIMIT and tier not in ("Advanced", "Intelligent-Tiering"):
        problems.append(f"TopologyParameter: Tier {tier} holds 4096 bytes; the largest topology has {worst['topology']}")

    if args.json:
        json.dump({"shapes": shapes, "largest": worst, "problems": problems}, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for key, size in sorted(worst.items()):
            limit = SSM_VALUE_LIMIT if key == "topology" else LAMBDA_ENVIRONMENT_LIMIT
            print(f"   largest {key}: {size} bytes of {limit} ({limit - size} to spare)")
        for problem in problems:
            print(f"   problem: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
