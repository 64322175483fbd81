#!/usr/bin/env python3
"""Resolves template.yaml offline for one parameter set, as CloudFormation would, and prints what
the functions would receive: the topology JSON (the TopologyParameter's value, whose name the
functions get in env MULTISITE_TOPOLOGY_PARAMETER) and the related wiring.

    render_topology.py --params params.json [--region R] [--account 123456789012] [--skip-rules]
    render_topology.py --cases cases.json


`params.json` maps parameter names to values. Parameters are checked like CloudFormation checks
them (required, AllowedPattern, AllowedValues, Min/MaxLength, Min/MaxValue) and then the template's
Rules are evaluated; a rejected set exits with status 2 and one `rejected: ...` line per problem.
`--skip-rules` skips the Rules (to show the topology validation catches the same mistakes).

Output (stdout, JSON): {"topology": "<the JSON string>", "topology_parameter": {"name", "tier"},
"functions": {logical id: {"env": {...}, "environment_bytes": N, "timeout": ..., "code_uri": ...}}, "alarm_rule_names": [...], "ledger_replicas": [...] | null,
"replica_resource_regions": [...] | null, "arc_resources": {logical id: {"type", "properties"}},
"monitoring": {logical id: {"type", "properties"}} (alarms, dashboard, operator topic),
"outputs": {name: value}, "conditions": {...}}

`environment_bytes` is the size Lambda limits to 4096: the variables as one JSON object ("key
names, values, quotes, commas, and brackets", Lambda's troubleshooting guide).

Resources' Ref / GetAtt values are unknown offline and render as "<Ref:X>" / "<GetAtt:X.Y>", except
an SSM parameter's Ref, which is its Name, an SNS topic's, an AWS-shaped ARN, and
those of the Route 53 ARC resources and health checks the stack creates with ArcResources=create
(they reach the topology): those render as AWS-shaped stand-ins, stable per stack name and logical
id (`arc_stand_in`), so the rendered topology is one the shared crate can validate.

`--cases` renders many sets in one process (importing cfn-lint takes seconds): the file is a list
of {"params": {...}, "region": R?, "skip_rules": bool?}; the output is a list of {"status": 0 or 2,
"output": <as above> or null, "problems": [...]}, in order, and the exit status 0.

The template is loaded with cfn-lint's decoder (short-form tags such as !Sub, !If), from the venv
that scripts/check-template.sh creates; no hand-written YAML loader.
"""

import argparse
import hashlib
import json
import re
import sys

from cfnlint.decode import decode

NO_VALUE = object()

# The ARC cluster's five Regional data-plane endpoints of a created cluster (stand-ins).
ARC_ENDPOINT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2")
# Ref / GetAtt of the resource types whose values the topology carries, as AWS returns them:
# Ref of each ARC type is its ARN (also its *Arn attribute), Ref of a health check is its id.
ARC_TYPES = {
    "AWS::Route53RecoveryControl::Cluster": "ClusterArn",
    "AWS::Route53RecoveryControl::ControlPanel": "ControlPanelArn",
    "AWS::Route53RecoveryControl::RoutingControl": "RoutingControlArn",
    "AWS::Route53RecoveryControl::SafetyRule": "SafetyRuleArn",
    "AWS::Route53::HealthCheck": "HealthCheckId",
}


# What an operator sees: the alarms, the dashboard, the operator topic and the watcher canaries
# (rendered as they are).
MONITORING_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard", "AWS::SNS::Topic", "AWS::Synthetics::Canary")


def _digest(*parts):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def arc_stand_in(resolver, logical_id):
    """The Ref value AWS would give `logical_id` (an ARC resource or a health check), stable per
    stack name and logical id: cluster/<uuid>, controlpanel/<32 hex>, <panel>/routingcontrol/<16
    hex>, <panel>/safetyrule/<16 hex>, a health check's lower-case UUID."""
    resource = resolver.resources[logical_id]
    kind = resource.get("Type")
    h = _digest(resolver.pseudo["AWS::StackName"], logical_id)
    uuid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
    prefix = f"arn:{resolver.pseudo['AWS::Partition']}:route53-recovery-control::{resolver.pseudo['AWS::AccountId']}"
    if kind == "AWS::Route53::HealthCheck":
        return uuid
    if kind == "AWS::Route53RecoveryControl::Cluster":
        return f"{prefix}:cluster/{uuid}"
    if kind == "AWS::Route53RecoveryControl::ControlPanel":
        return f"{prefix}:controlpanel/{h[:32]}"
    panel = str(resolver.value(resource.get("Properties", {}).get("ControlPanelArn")))
    leaf = "routingcontrol" if kind == "AWS::Route53RecoveryControl::RoutingControl" else "safetyrule"
    return f"{panel}/{leaf}/{h[:16]}"


def arc_cluster_endpoints(resolver, logical_id):
    """GetAtt Cluster.ClusterEndpoints: a list of {"Endpoint", "Region"} objects (stand-ins)."""
    h = _digest(resolver.pseudo["AWS::StackName"], logical_id)
    return [
        {"Endpoint": f"https://{h[i * 8:i * 8 + 8]}.route53-recovery-cluster.{region}.amazonaws.com/v1", "Region": region}
        for i, region in enumerate(ARC_ENDPOINT_REGIONS)
    ]


class Rejected(Exception):
    pass


class Resolver:
    def __init__(self, template, params, region, account, partition, stack_name):
        self.t = template
        self.params = params
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": partition,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account}:stack/{stack_name}/id",
        }
        self.resources = template.get("Resources", {})
        self.conditions = {}

    # -- conditions -------------------------------------------------------------------------
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self.conditions[name]

    # -- intrinsic functions ----------------------------------------------------------------
    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            return self.resource_ref(name)
        raise KeyError(f"Ref to unknown name {name}")

    # -- hooks: resources' Ref / GetAtt values are unknown offline; a subclass may know them ---
    # (the ARC resources' and health checks' are AWS-shaped stand-ins: they reach the topology)
    def resource_ref(self, logical_id):
        if self.resources[logical_id].get("Type") in ARC_TYPES:
            return arc_stand_in(self, logical_id)
        if self.resources[logical_id].get("Type") == "AWS::SSM::Parameter":
            return self.value(self.resources[logical_id]["Properties"]["Name"])
        if self.resources[logical_id].get("Type") == "AWS::SNS::Topic":
            # A topic's Ref is its ARN; without TopicName CloudFormation names it
            # <stack>-<logical id>-<suffix>.
            suffix = _digest(self.pseudo["AWS::StackName"], logical_id)[:12].upper()
            name = f"{self.pseudo['AWS::StackName']}-{logical_id}-{suffix}"
            return f"arn:{self.pseudo['AWS::Partition']}:sns:{self.pseudo['AWS::Region']}:{self.pseudo['AWS::AccountId']}:{name}"
        return f"<Ref:{logical_id}>"

    def get_att(self, target):
        """`target` is "LogicalId.Attribute" (from !GetAtt or ${LogicalId.Attribute} in !Sub)."""
        logical_id, _, attribute = target.partition(".")
        kind = self.resources.get(logical_id, {}).get("Type")
        if kind in ARC_TYPES and attribute == ARC_TYPES[kind]:
            return arc_stand_in(self, logical_id)
        if kind == "AWS::Route53RecoveryControl::Cluster" and attribute == "ClusterEndpoints":
            return arc_cluster_endpoints(self, logical_id)
        return f"<GetAtt:{target}>"

    def sub(self, text, variables):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.get_att(name))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, arg), = node.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Condition":
                    return self.condition(arg)
                if key == "Fn::If":
                    name, yes, no = arg
                    return self.value(yes if self.condition(name) else no)
                if key == "Fn::Equals":
                    a, b = (self.value(x) for x in arg)
                    return str(a) == str(b)
                if key == "Fn::Not":
                    return not self.value(arg[0])
                if key == "Fn::And":
                    return all(self.value(x) for x in arg)
                if key == "Fn::Or":
                    return any(self.value(x) for x in arg)
                if key == "Fn::Contains":
                    items, needle = self.value(arg[0]), self.value(arg[1])
                    return str(needle) in [str(i) for i in items]
                if key == "Fn::Sub":
                    if isinstance(arg, str):
                        return self.sub(arg, {})
                    text, variables = arg
                    return self.sub(text, {k: self.value(v) for k, v in variables.items()})
                if key == "Fn::Join":
                    delimiter, items = arg
                    return delimiter.join(str(i) for i in self.value(items))
                if key == "Fn::Split":
                    delimiter, text = arg
                    return str(self.value(text)).split(delimiter)
                if key == "Fn::Select":
                    index, items = arg
                    items = self.value(items)
                    return items[int(self.value(index))]
                if key == "Fn::GetAtt":
                    target = arg if isinstance(arg, str) else ".".join(arg)
                    return self.get_att(target)
                if key.startswith("Fn::"):
                    raise NotImplementedError(f"{key} is not resolved by this script")
            out = {}
            for k, v in node.items():
                v = self.value(v)
                if v is not NO_VALUE:
                    out[k] = v
            return out
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not NO_VALUE]
        return node


def check_parameters(template, given):
    """CloudFormation's own parameter checks; returns the effective values (strings)."""
    declared = template.get("Parameters", {})
    problems = []
    for name in given:
        if name not in declared:
            problems.append(f"{name}: not a parameter of the template")
    values = {}
    for name, spec in declared.items():
        if name in given:
            raw = given[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            problems.append(f"{name}: required (no default) but not given")
            continue
        value = str(raw).lower() if isinstance(raw, bool) else str(raw)
        values[name] = value
        kind = spec.get("Type", "String")
        if kind == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"{name}: `{value}` is not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                problems.append(f"{name}: {value} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"{name}: {value} is above MaxValue {spec['MaxValue']}")
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            problems.append(f"{name}: `{value}` is not one of {list(map(str, spec['AllowedValues']))}")
        if "AllowedPattern" in spec and re.fullmatch(spec["AllowedPattern"], value) is None:
            hint = spec.get("ConstraintDescription", f"must match {spec['AllowedPattern']}")
            problems.append(f"{name}: `{value}` does not match AllowedPattern ({hint})")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            problems.append(f"{name}: shorter than MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            problems.append(f"{name}: longer than MaxLength {spec['MaxLength']}")
    if problems:
        raise Rejected(problems)
    return values


def check_rules(template, resolver):
    problems = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.value(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not resolver.value(assertion["Assert"]):
                problems.append(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")
    if problems:
        raise Rejected(problems)


def render(template, given, region, account, partition, stack_name, skip_rules):
    params = check_parameters(template, given)
    resolver = Resolver(template, params, region or params.get("Region1"), account, partition, stack_name)
    if not skip_rules:
        check_rules(template, resolver)
    for name in template.get("Conditions", {}):
        resolver.condition(name)

    def active(logical_id):
        resource = template["Resources"][logical_id]
        return "Condition" not in resource or resolver.condition(resource["Condition"])

    global_fn = template.get("Globals", {}).get("Function", {})
    global_env = resolver.value(global_fn.get("Environment", {}).get("Variables", {}))
    functions = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function" or not active(logical_id):
            continue
        props = resource.get("Properties", {})
        env = dict(global_env)
        env.update(resolver.value(props.get("Environment", {}).get("Variables", {})))
        functions[logical_id] = {
            "env": env,
            "timeout": resolver.value(props.get("Timeout", global_fn.get("Timeout"))),
            "code_uri": resolver.value(props.get("CodeUri", global_fn.get("CodeUri"))),
            "reserved_concurrency": resolver.value(props.get("ReservedConcurrentExecutions", NO_VALUE))
            if props.get("ReservedConcurrentExecutions") is not None
            else None,
        }
        if functions[logical_id]["reserved_concurrency"] is NO_VALUE:
            functions[logical_id]["reserved_concurrency"] = None
        functions[logical_id]["environment_bytes"] = len(json.dumps(env, separators=(",", ":")).encode())

    parameter = template["Resources"]["TopologyParameter"]["Properties"]
    topology_parameter = {"name": resolver.value(parameter["Name"]), "tier": parameter.get("Tier")}
    topology = resolver.value(parameter["Value"])
    named = {f["env"].get("MULTISITE_TOPOLOGY_PARAMETER") for f in functions.values()}
    if named != {topology_parameter["name"]}:
        raise SystemExit(f"functions disagree on MULTISITE_TOPOLOGY_PARAMETER: {named}")

    rule = resolver.value(template["Resources"]["AlarmStateChangeRule"]["Properties"]["EventPattern"])
    ledger = (
        [r["Region"] for r in resolver.value(template["Resources"]["LedgerTable"]["Properties"]["Replicas"])]
        if active("LedgerTable")
        else None
    )
    replicas = (
        resolver.value(template["Resources"]["DataTableReplicas"]["Properties"]["Regions"])
        if active("DataTableReplicas")
        else None
    )
    arc_resources = {
        logical_id: {"type": resource["Type"], "properties": resolver.value(resource.get("Properties", {}))}
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") in ARC_TYPES and active(logical_id)
    }
    monitoring = {
        logical_id: {"type": resource["Type"], "properties": resolver.value(resource.get("Properties", {}))}
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") in MONITORING_TYPES and active(logical_id)
    }
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        outputs[name] = resolver.value(output["Value"])
    return {
        "topology": topology,
        "topology_parameter": topology_parameter,
        "functions": functions,
        "arc_resources": arc_resources,
        "monitoring": monitoring,
        "outputs": outputs,
        "alarm_rule_names": rule["detail"]["alarmName"],
        "alarm_rule_accounts": rule.get("account"),
        "alarm_rule_resources": rule.get("resources"),
        "ledger_replicas": ledger,
        "replica_resource_regions": replicas,
        "conditions": resolver.conditions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--params", help="JSON file: parameter name -> value")
    parser.add_argument("--cases", help="JSON file: a list of {params, region?, skip_rules?}")
    parser.add_argument("--region", help="the stack's Region (default: Region1)")
    parser.add_argument("--account", default="123456789012")
    parser.add_argument("--partition", default="aws")
    parser.add_argument("--stack-name", default="multisite")
    parser.add_argument("--skip-rules", action="store_true")
    args = parser.parse_args()

    template, matches = decode(args.template)
    if matches or template is None:
        raise SystemExit(f"cannot load {args.template}: {[str(m) for m in matches]}")
    if args.cases:
        with open(args.cases) as f:
            cases = json.load(f)
        results = []
        for case in cases:
            try:
                out = render(
                    template, case["params"], case.get("region"), args.account, args.partition,
                    args.stack_name, case.get("skip_rules", False),
                )
                results.append({"status": 0, "output": out, "problems": []})
            except Rejected as rejected:
                results.append({"status": 2, "output": None, "problems": rejected.args[0]})
        json.dump(results, sys.stdout, indent=2, sort_keys=True)
        print()
        return
    if not args.params:
        parser.error("give --params or --cases")
    with open(args.params) as f:
        given = json.load(f)
    try:
        out = render(template, given, args.region, args.account, args.partition, args.stack_name, args.skip_rules)
    except Rejected as rejected:
        for problem in rejected.args[0]:
            print(f"rejected: {problem}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
