"""Route 53 ARC: recovery control config (restJson1, us-west-2), the cluster data plane at the
cluster's five endpoints (awsJson1_0), safety rules, endpoint faults, RECOVERY_CONTROL health
checks, IAM."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Emulator
from multisite_emulator import arc

ACCOUNT = "123456789012"
REGIONS = ["us-east-1", "ap-southeast-2", "eu-west-1", "us-west-2", "ap-northeast-1"]
KEYS = dict(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _config(read_timeout: float = 30) -> Config:
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=read_timeout)


def config_client(emu: Emulator, region: str = "us-west-2", **keys: str) -> Any:
    return boto3.client("route53-recovery-control-config", region_name=region, endpoint_url=emu.url,
                        config=_config(), **(keys or KEYS))


def data_client(endpoint: dict[str, str], region: str | None = None, read_timeout: float = 30, **keys: str) -> Any:
    """As AWS's code example builds it: endpoint_url and region_name from one ClusterEndpoint."""
    return boto3.client("route53-recovery-cluster", region_name=region or endpoint["Region"],
                        endpoint_url=endpoint["Endpoint"], config=_config(read_timeout), **(keys or KEYS))


def error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str, dict[str, Any]]:
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    response = excinfo.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["Error"]["Message"], response)


class World:
    """A cluster with routing controls (in its default control panel) and clients."""

    def __init__(self, emu: Emulator, names: tuple[str, ...] = ("use1", "euw1", "apse2")):
        self.emu = emu
        self.cc = config_client(emu)
        self.cluster = self.cc.create_cluster(ClusterName=f"c-{uuid.uuid4().hex[:6]}")["Cluster"]
        self.arn = self.cluster["ClusterArn"]
        self.endpoints = {e["Region"]: e for e in self.cluster["ClusterEndpoints"]}
        self.panel = self.cc.list_control_panels(ClusterArn=self.arn)["ControlPanels"][0]["ControlPanelArn"]
        self.controls = {
            n: self.cc.create_routing_control(ClusterArn=self.arn, RoutingControlName=n)["RoutingControl"]["RoutingControlArn"]
            for n in names
        }

    def dp(self, region: str = "us-east-1", **kwargs: Any) -> Any:
        return data_client(self.endpoints[region], **kwargs)

    def state(self, name: str, region: str = "us-east-1") -> str:
        return self.dp(region).get_routing_control_state(RoutingControlArn=self.controls[name])["RoutingControlState"]

    def states(self) -> dict[str, str]:
        return {n: self.state(n) for n in self.controls}

    def set(self, region: str = "us-east-1", overrides: list[str] | None = None, **states: str) -> None:
        entries = [{"RoutingControlArn": self.controls[n], "RoutingControlState": s} for n, s in states.items()]
        kwargs = {"SafetyRulesToOverride": overrides} if overrides else {}
        self.dp(region).update_routing_control_states(UpdateRoutingControlStateEntries=entries, **kwargs)

    def assertion(self, names: list[str], kind: str = "ATLEAST", threshold: int = 1, inverted: bool = False,
                  wait_ms: int = 0, name: str | None = None) -> str:
        rule = self.cc.create_safety_rule(AssertionRule={
            "Name": name or f"a-{uuid.uuid4().hex[:6]}", "ControlPanelArn": self.panel, "WaitPeriodMs": wait_ms,
            "AssertedControls": [self.controls[n] for n in names],
            "RuleConfig": {"Type": kind, "Threshold": threshold, "Inverted": inverted},
        })["AssertionRule"]
        return rule["SafetyRuleArn"]

    def gating(self, gates: list[str], targets: list[str], kind: str = "OR", threshold: int = 1,
               inverted: bool = False, wait_ms: int = 0) -> str:
        rule = self.cc.create_safety_rule(GatingRule={
            "Name": f"g-{uuid.uuid4().hex[:6]}", "ControlPanelArn": self.panel, "WaitPeriodMs": wait_ms,
            "GatingControls": [self.controls[n] for n in gates], "TargetControls": [self.controls[n] for n in targets],
            "RuleConfig": {"Type": kind, "Threshold": threshold, "Inverted": inverted},
        })["GatingRule"]
        return rule["SafetyRuleArn"]


@pytest.fixture
def world(emu: Emulator) -> World:
    return World(emu)


def raw(url: str, method: str = "POST", body: bytes = b"{}", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def signed_headers(region: str, service: str = "route53-recovery-cluster", target: str = "ListRoutingControls") -> dict[str, str]:
    return {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"ToggleCustomerAPI.{target}",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/{region}/{service}/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=0",
    }


# =============================================================================================
# Control plane (route53-recovery-control-config)
# =============================================================================================


def test_create_cluster_answers_five_endpoints_and_a_default_control_panel(emu):
    cc = config_client(emu)
    cluster = cc.create_cluster(ClusterName="prod")["Cluster"]
    cluster_id = cluster["ClusterArn"].rsplit("/", 1)[1]
    assert cluster["ClusterArn"] == f"arn:aws:route53-recovery-control::{ACCOUNT}:cluster/{cluster_id}"
    assert (cluster["Name"], cluster["Status"], cluster["Owner"], cluster["NetworkType"]) == ("prod", "DEPLOYED", ACCOUNT, "IPV4")
    host = emu.url.split("://", 1)[1]
    assert cluster["ClusterEndpoints"] == [
        {"Region": r, "Endpoint": f"http://{host}/_multisite-arc/{cluster_id}/{r}/v1"} for r in REGIONS
    ]
    assert cc.describe_cluster(ClusterArn=cluster["ClusterArn"])["Cluster"] == cluster
    assert cc.list_clusters()["Clusters"] == [cluster]

    panels = cc.list_control_panels(ClusterArn=cluster["ClusterArn"])["ControlPanels"]
    assert len(panels) == 1
    panel = panels[0]
    assert panel["Name"] == "DefaultControlPanel" and panel["DefaultControlPanel"] is True
    assert panel["ControlPanelArn"].startswith(f"arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/")
    assert (panel["ClusterArn"], panel["RoutingControlCount"], panel["Status"]) == (cluster["ClusterArn"], 0, "DEPLOYED")


def test_control_panels_routing_controls_and_their_arns(emu):
    cc = config_client(emu)
    cluster = cc.create_cluster(ClusterName="c")["Cluster"]["ClusterArn"]
    panel = cc.create_control_panel(ClusterArn=cluster, ControlPanelName="p")["ControlPanel"]
    assert panel["DefaultControlPanel"] is False and panel["Name"] == "p"
    control = cc.create_routing_control(ClusterArn=cluster, ControlPanelArn=panel["ControlPanelArn"],
                                        RoutingControlName="cell-1")["RoutingControl"]
    assert control["RoutingControlArn"].startswith(panel["ControlPanelArn"] + "/routingcontrol/")
    assert control == {"ControlPanelArn": panel["ControlPanelArn"], "Name": "cell-1", "RoutingControlArn": control["RoutingControlArn"],
                       "Status": "DEPLOYED", "Owner": ACCOUNT}
    assert cc.describe_routing_control(RoutingControlArn=control["RoutingControlArn"])["RoutingControl"] == control
    assert cc.list_routing_controls(ControlPanelArn=panel["ControlPanelArn"])["RoutingControls"] == [control]
    assert cc.describe_control_panel(ControlPanelArn=panel["ControlPanelArn"])["ControlPanel"]["RoutingControlCount"] == 1
    # Without ControlPanelArn the control goes to the default control panel.
    default = next(p for p in cc.list_control_panels()["ControlPanels"] if p["DefaultControlPanel"])
    other = cc.create_routing_control(ClusterArn=cluster, RoutingControlName="cell-2")["RoutingControl"]
    assert other["ControlPanelArn"] == default["ControlPanelArn"]
    # Idempotent with a ClientToken.
    again = cc.create_routing_control(ClusterArn=cluster, RoutingControlName="cell-3", ClientToken="t1")["RoutingControl"]
    assert cc.create_routing_control(ClusterArn=cluster, RoutingControlName="cell-3", ClientToken="t1")["RoutingControl"] == again


def test_safety_rules_create_describe_list_update_delete(world):
    cc = world.cc
    rule_arn = world.assertion(["use1", "euw1", "apse2"], threshold=2, wait_ms=5000, name="keep-two")
    assert rule_arn.startswith(world.panel + "/safetyrule/")
    described = cc.describe_safety_rule(SafetyRuleArn=rule_arn)
    assert "GatingRule" not in described
    rule = described["AssertionRule"]
    assert rule["AssertedControls"] == list(world.controls.values())
    assert rule["RuleConfig"] == {"Type": "ATLEAST", "Threshold": 2, "Inverted": False}
    assert (rule["Name"], rule["WaitPeriodMs"], rule["Status"], rule["Owner"]) == ("keep-two", 5000, "DEPLOYED", ACCOUNT)

    gate = world.gating(["use1"], ["euw1", "apse2"])
    listed = cc.list_safety_rules(ControlPanelArn=world.panel)["SafetyRules"]
    assert [list(r) for r in listed] == [["ASSERTION"], ["GATING"]]
    assert listed[1]["GATING"]["GatingControls"] == [world.controls["use1"]]
    assert listed[1]["GATING"]["TargetControls"] == [world.controls["euw1"], world.controls["apse2"]]

    updated = cc.update_safety_rule(AssertionRuleUpdate={"SafetyRuleArn": rule_arn, "Name": "renamed", "WaitPeriodMs": 0})
    assert updated["AssertionRule"]["Name"] == "renamed" and updated["AssertionRule"]["WaitPeriodMs"] == 0
    status, code, _, _ = error(cc.update_safety_rule, GatingRuleUpdate={"SafetyRuleArn": rule_arn, "Name": "x", "WaitPeriodMs": 0})
    assert (status, code) == (400, "ValidationException")

    cc.delete_safety_rule(SafetyRuleArn=gate)
    status, code, _, _ = error(cc.describe_safety_rule, SafetyRuleArn=gate)
    assert (status, code) == (404, "ResourceNotFoundException")


def test_config_validation_not_found_and_conflict(world):
    cc = world.cc
    missing = f"arn:aws:route53-recovery-control::{ACCOUNT}:cluster/00000000-0000-0000-0000-000000000000"
    assert error(cc.describe_cluster, ClusterArn=missing)[:2] == (404, "ResourceNotFoundException")
    assert error(cc.create_control_panel, ClusterArn=missing, ControlPanelName="p")[:2] == (404, "ResourceNotFoundException")
    assert error(cc.create_cluster, ClusterName="has space")[:2] == (400, "ValidationException")
    assert error(cc.describe_routing_control, RoutingControlArn=world.panel + "/routingcontrol/nope")[:2] == (404, "ResourceNotFoundException")
    # CreateSafetyRule models only ValidationException: unknown controls, bad thresholds, both kinds.
    base = {"Name": "r", "ControlPanelArn": world.panel, "WaitPeriodMs": 0,
            "RuleConfig": {"Type": "ATLEAST", "Threshold": 1, "Inverted": False}}
    assert error(cc.create_safety_rule, AssertionRule={**base, "AssertedControls": [world.panel + "/routingcontrol/x"]})[:2] == (400, "ValidationException")
    assert error(cc.create_safety_rule, AssertionRule={**base, "AssertedControls": [world.controls["use1"]],
                                                       "RuleConfig": {"Type": "ATLEAST", "Threshold": 2, "Inverted": False}})[:2] == (400, "ValidationException")
    assert error(cc.create_safety_rule)[:2] == (400, "ValidationException")
    world.assertion(["use1"], name="dup")
    assert error(cc.create_safety_rule, AssertionRule={**base, "Name": "dup", "AssertedControls": [world.controls["euw1"]]})[:2] == (400, "ValidationException")
    # Deleting what is in use is a conflict; the default control panel goes with its cluster only.
    assert error(cc.delete_cluster, ClusterArn=world.arn)[:2] == (409, "ConflictException")
    assert error(cc.delete_routing_control, RoutingControlArn=world.controls["use1"])[:2] == (409, "ConflictException")
    assert error(cc.delete_control_panel, ControlPanelArn=world.panel)[:2] == (400, "ValidationException")


def test_delete_cluster_removes_it_and_its_endpoints(emu):
    cc = config_client(emu)
    cluster = cc.create_cluster(ClusterName="gone")["Cluster"]
    panel = cc.create_control_panel(ClusterArn=cluster["ClusterArn"], ControlPanelName="p")["ControlPanel"]
    control = cc.create_routing_control(ClusterArn=cluster["ClusterArn"], ControlPanelArn=panel["ControlPanelArn"],
                                        RoutingControlName="x")["RoutingControl"]["RoutingControlArn"]
    cc.delete_routing_control(RoutingControlArn=control)
    cc.delete_control_panel(ControlPanelArn=panel["ControlPanelArn"])
    cc.delete_cluster(ClusterArn=cluster["ClusterArn"])
    assert cc.list_clusters()["Clusters"] == [] and cc.list_control_panels()["ControlPanels"] == []
    with pytest.raises(botocore.exceptions.ConnectionClosedError):  # its endpoints no longer exist
        data_client(cluster["ClusterEndpoints"][0]).list_routing_controls()


def test_config_api_exists_only_in_us_west_2(emu):
    # Signed for another Region: a host that does not exist; the connection closes unanswered.
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        config_client(emu, "us-east-1").list_clusters()
    assert config_client(emu).list_clusters()["Clusters"] == []
    entry = emu.get("requests")["requests"][-2]
    assert (entry["region"], entry["service"], entry["operation"], entry["status"]) == (
        "us-east-1", "route53-recovery-control-config", "ListClusters", 0)


def test_config_paging(emu):
    cc = config_client(emu)
    for i in range(3):
        cc.create_cluster(ClusterName=f"c{i}")
    first = cc.list_clusters(MaxResults=2)
    assert len(first["Clusters"]) == 2 and first["NextToken"]
    rest = cc.list_clusters(MaxResults=2, NextToken=first["NextToken"])
    assert [c["Name"] for c in first["Clusters"] + rest["Clusters"]] == ["c0", "c1", "c2"] and "NextToken" not in rest
    assert error(cc.list_clusters, NextToken="bogus")[:2] == (400, "ValidationException")


# =============================================================================================
# Data plane (route53-recovery-cluster)
# =============================================================================================


def test_routing_controls_start_off_and_every_endpoint_shares_the_state(world):
    assert set(world.states().values()) == {"Off"}
    got = world.dp().get_routing_control_state(RoutingControlArn=world.controls["use1"])
    assert (got["RoutingControlArn"], got["RoutingControlState"], got["RoutingControlName"]) == (world.controls["use1"], "Off", "use1")
    world.dp("ap-northeast-1").update_routing_control_state(RoutingControlArn=world.controls["use1"], RoutingControlState="On")
    for region in REGIONS:
        assert world.state("use1", region) == "On"
    listed = world.dp("eu-west-1").list_routing_controls()["RoutingControls"]
    assert {c["RoutingControlName"]: c["RoutingControlState"] for c in listed} == {"use1": "On", "euw1": "Off", "apse2": "Off"}
    assert all(c["ControlPanelArn"] == world.panel and c["ControlPanelName"] == "DefaultControlPanel" and c["Owner"] == ACCOUNT
               for c in listed)
    page = world.dp().list_routing_controls(ControlPanelArn=world.panel, MaxResults=2)
    assert len(page["RoutingControls"]) == 2 and page["NextToken"]
    assert len(world.dp().list_routing_controls(NextToken=page["NextToken"])["RoutingControls"]) == 1


def test_data_plane_validation_and_not_found(world):
    dp = world.dp()
    unknown = world.panel + "/routingcontrol/0123456789abcdef"
    status, code, _, response = error(dp.get_routing_control_state, RoutingControlArn=unknown)
    assert (status, code, response["resourceId"]) == (404, "ResourceNotFoundException", unknown)
    assert error(dp.update_routing_control_state, RoutingControlArn=unknown, RoutingControlState="On")[:2] == (404, "ResourceNotFoundException")
    # A control of another cluster is not found at this cluster's endpoints.
    other = World(world.emu, ("x",))
    assert error(dp.get_routing_control_state, RoutingControlArn=other.controls["x"])[:2] == (404, "ResourceNotFoundException")
    # Bad state values and empty entries, the model's ValidationException with reason and fields.
    endpoint = world.endpoints["us-east-1"]["Endpoint"]
    status, _, body = raw(endpoint, body=json.dumps({"RoutingControlArn": world.controls["use1"], "RoutingControlState": "ON"}).encode(),
                          headers=signed_headers("us-east-1", target="UpdateRoutingControlState"))
    assert (status, body["__type"], body["reason"]) == (400, "ValidationException", "fieldValidationFailed")
    assert body["fields"][0]["name"] == "RoutingControlState"
    assert error(dp.update_routing_control_states, UpdateRoutingControlStateEntries=[])[:2] == (400, "ValidationException")
    duplicate = [{"RoutingControlArn": world.controls["use1"], "RoutingControlState": s} for s in ("On", "Off")]
    assert error(dp.update_routing_control_states, UpdateRoutingControlStateEntries=duplicate)[:2] == (400, "ValidationException")
    status, _, body = raw(endpoint, body=b"not json", headers=signed_headers("us-east-1"))
    assert (status, body["__type"], body["reason"]) == (400, "ValidationException", "cannotParse")
    status, _, body = raw(endpoint, headers=signed_headers("us-east-1", target="DeleteRoutingControl"))
    assert (status, body["__type"], body["reason"]) == (400, "ValidationException", "unknownOperation")
    assert set(world.states().values()) == {"Off"}


def test_endpoint_path_with_and_without_trailing_slash(world):
    endpoint = world.endpoints["eu-west-1"]["Endpoint"]
    for url in (endpoint, endpoint + "/"):  # botocore posts to .../v1, aws-sdk-rust to .../v1/
        status, headers, body = raw(url, headers=signed_headers("eu-west-1"))
        assert status == 200 and headers["Content-Type"] == "application/x-amz-json-1.0"
        assert len(body["RoutingControls"]) == 3
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # another path: no such endpoint
        raw(endpoint + "/extra", headers=signed_headers("eu-west-1"))


def test_base_url_refuses_the_data_plane(emu, world):
    base = boto3.client("route53-recovery-cluster", region_name="us-east-1", endpoint_url=emu.url, config=_config(), **KEYS)
    status, code, message, _ = error(base.get_routing_control_state, RoutingControlArn=world.controls["use1"])
    assert (status, code) == (404, "UnknownOperationException") and "cluster endpoint" in message
    entry = emu.get("requests")["requests"][-1]
    assert (entry["service"], entry["operation"], entry["status"]) == ("route53-recovery-cluster", "GetRoutingControlState", 404)


def test_wrong_signing_region_service_and_unsigned(world):
    wrong = data_client(world.endpoints["us-east-1"], region="eu-west-1")
    status, code, message, _ = error(wrong.list_routing_controls)
    assert (status, code) == (403, "InvalidSignatureException") and "valid region" in message
    endpoint = world.endpoints["us-east-1"]["Endpoint"]
    status, _, body = raw(endpoint, headers=signed_headers("us-east-1", service="dynamodb"))
    assert (status, body["__type"]) == (403, "InvalidSignatureException")
    status, _, body = raw(endpoint, headers={"X-Amz-Target": "ToggleCustomerAPI.ListRoutingControls"})
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")
    # A cluster id that does not exist is no host at all.
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        data_client({"Region": "us-east-1", "Endpoint": endpoint.replace(world.arn.rsplit("/", 1)[1], str(uuid.uuid4()))}).list_routing_controls()


# =============================================================================================
# Safety rules
# =============================================================================================


def test_atleast_rule_refuses_turning_the_last_on_control_off(world):
    rule = world.assertion(["use1", "euw1", "apse2"], threshold=1)
    world.set(use1="On", euw1="On")
    world.dp().update_routing_control_state(RoutingControlArn=world.controls["euw1"], RoutingControlState="Off")
    status, code, message, response = error(
        world.dp().update_routing_control_state, RoutingControlArn=world.controls["use1"], RoutingControlState="Off")
    assert (status, code) == (409, "ConflictException")
    assert rule in message and (response["resourceId"], response["resourceType"]) == (rule, "SafetyRule")
    assert world.states() == {"use1": "On", "euw1": "Off", "apse2": "Off"}


def test_rules_are_evaluated_atomically_over_the_whole_request(world):
    world.assertion(["use1", "euw1", "apse2"], threshold=2)
    # One at a time no control can be turned On (1 of 3 violates ATLEAST 2) ...
    assert error(world.set, use1="On")[:2] == (409, "ConflictException")
    assert set(world.states().values()) == {"Off"}
    # ... but together they can: the rule judges the state after the whole change.
    world.set(use1="On", euw1="On")
    assert world.states() == {"use1": "On", "euw1": "On", "apse2": "Off"}
    # Moving traffic from one cell to another in one request keeps 2 On: allowed.
    world.set(use1="Off", apse2="On")
    assert world.states() == {"use1": "Off", "euw1": "On", "apse2": "On"}
    # A request that would leave 1 On fails as a whole: the entry that is fine on its own is not applied.
    assert error(world.set, use1="On", euw1="Off", apse2="Off")[:2] == (409, "ConflictException")
    assert world.states() == {"use1": "Off", "euw1": "On", "apse2": "On"}


def test_and_or_and_inverted_assertions(world):
    world.set(use1="On", euw1="On", apse2="On")
    world.assertion(["use1", "euw1"], kind="AND", threshold=0)
    assert error(world.set, use1="Off")[:2] == (409, "ConflictException")
    world.assertion(["apse2"], kind="OR", threshold=0, inverted=True)  # apse2 must stay Off ... already On
    assert error(world.set, apse2="On")[:2] == (409, "ConflictException")  # a result that violates: refused
    world.set(apse2="Off")  # the change that satisfies it is accepted
    assert world.states() == {"use1": "On", "euw1": "On", "apse2": "Off"}


def test_override_bypasses_only_the_rules_named(world):
    first = world.assertion(["use1", "euw1"], threshold=1)
    second = world.assertion(["use1", "euw1", "apse2"], threshold=1)
    world.set(use1="On")
    # Turning everything Off violates both; overriding one still leaves the other, named in the error.
    status, code, message, _ = error(world.set, use1="Off", overrides=[first])
    assert (status, code) == (409, "ConflictException") and second in message
    world.set(use1="Off", overrides=[first, second])
    assert set(world.states().values()) == {"Off"}
    world.dp().update_routing_control_state(RoutingControlArn=world.controls["euw1"], RoutingControlState="On",
                                            SafetyRulesToOverride=[first])
    unknown = world.panel + "/safetyrule/ffffffffffffffff"
    assert error(world.set, use1="On", overrides=[unknown])[:2] == (404, "ResourceNotFoundException")


def test_gating_rule_locks_its_targets_until_the_gate_is_on(world):
    world.gating(["use1"], ["euw1", "apse2"])
    assert error(world.set, euw1="On")[:2] == (409, "ConflictException")
    # The gate must be satisfied before the change too: opening it in the same request is refused.
    assert error(world.set, use1="On", euw1="On")[:2] == (409, "ConflictException")
    world.set(use1="On")  # the gating control itself is not a target
    world.set(euw1="On", apse2="On")
    assert world.states() == {"use1": "On", "euw1": "On", "apse2": "On"}
    world.set(use1="Off")
    assert error(world.set, euw1="Off")[:2] == (409, "ConflictException")


def test_wait_period_refuses_changes_right_after_a_change(world):
    rule = world.assertion(["use1", "euw1"], threshold=1, wait_ms=400)
    world.set(use1="On")  # the first change: no wait before it
    status, code, message, _ = error(world.set, euw1="On")
    assert (status, code) == (409, "ConflictException") and "wait period" in message and rule in message
    world.set(euw1="On", overrides=[rule])  # overriding the rule skips its wait too
    time.sleep(0.45)
    world.set(use1="Off")
    assert world.states() == {"use1": "Off", "euw1": "On", "apse2": "Off"}


# =============================================================================================
# Endpoint faults, outages, throttling, the control-plane switch
# =============================================================================================


def test_each_endpoint_fails_on_its_own_and_a_client_trying_endpoints_in_turn_succeeds(emu, world):
    answer = emu.post("arc/endpoint", {"region": "us-east-1", "down": True, "cluster_arn": world.arn})
    assert answer["arc_endpoints_down"] == [{"region": "us-east-1", "cluster_arn": world.arn, "mode": "unavailable"}]
    status, code, message, _ = error(world.dp("us-east-1").list_routing_controls)
    assert (status, code) == (503, "EndpointTemporarilyUnavailableException")
    emu.post("arc/endpoint", {"region": "ap-southeast-2", "down": True})  # every cluster's endpoint there
    for region in ("eu-west-1", "us-west-2", "ap-northeast-1"):
        assert len(world.dp(region).list_routing_controls()["RoutingControls"]) == 3

    def update_in_turn(state: str) -> str:
        """AWS's code example: try each cluster endpoint until one answers."""
        for endpoint in world.cluster["ClusterEndpoints"]:
            try:
                data_client(endpoint).update_routing_control_state(RoutingControlArn=world.controls["use1"], RoutingControlState=state)
                return endpoint["Region"]
            except ClientError as err:
                assert err.response["Error"]["Code"] == "EndpointTemporarilyUnavailableException"
        raise AssertionError("no endpoint answered")

    assert update_in_turn("On") == "eu-west-1"
    assert world.state("use1", "ap-northeast-1") == "On"
    assert [f["region"] for f in emu.get("state")["arc_endpoints_down"]] == ["ap-southeast-2", "us-east-1"]
    emu.post("arc/endpoint", {"region": "us-east-1", "down": False})
    assert world.state("use1", "us-east-1") == "On"
    assert emu.control("POST", "arc/endpoint", {"region": "eu-central-1", "down": True})[0] == 400
    assert emu.control("POST", "arc/endpoint", {"region": "us-east-1", "down": True, "mode": "slow"})[0] == 400


def test_timeout_mode_holds_the_call(emu, world):
    emu.post("arc/endpoint", {"region": "eu-west-1", "down": True, "mode": "timeout"})
    started = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        world.dp("eu-west-1", read_timeout=1).list_routing_controls()
    assert 0.9 < time.monotonic() - started < 5
    assert world.dp("us-west-2").list_routing_controls()["RoutingControls"]  # the others answer
    assert arc.HOLD_SECONDS == 30.0


def test_region_outage_takes_that_regions_endpoint_down(emu, world):
    emu.post("outage", {"region": "ap-northeast-1", "down": True})
    assert error(world.dp("ap-northeast-1").list_routing_controls)[:2] == (503, "EndpointTemporarilyUnavailableException")
    assert world.dp("us-east-1").list_routing_controls()["RoutingControls"]
    emu.post("outage", {"region": "ap-northeast-1", "down": True, "except_services": ["route53-recovery-cluster"]})
    assert world.dp("ap-northeast-1").list_routing_controls()["RoutingControls"]
    emu.post("outage", {"region": "ap-northeast-1", "down": False})
    emu.post("outage", {"region": "us-west-2", "down": True, "services": ["route53-recovery-cluster"]})
    assert error(world.dp("us-west-2").list_routing_controls)[:2] == (503, "EndpointTemporarilyUnavailableException")
    assert world.cc.list_clusters()["Clusters"]  # the us-west-2 config API is another service
    emu.post("outage", {"region": "us-west-2", "down": True})  # a Region outage fails it too
    status, code, _, response = error(world.cc.list_clusters)
    assert (status, code) == (503, "ServiceUnavailable")
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ServiceUnavailable"


def test_throttling_is_the_models_throttling_exception(emu, world):
    emu.post("throttle", {"region": "eu-west-1", "count": 1, "service": "route53-recovery-cluster"})
    status, code, message, response = error(world.dp("eu-west-1").list_routing_controls)
    assert (status, code, message) == (429, "ThrottlingException", "Rate exceeded")
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.0"
    assert world.dp("eu-west-1").list_routing_controls()["RoutingControls"]
    emu.post("throttle", {"region": "us-west-2", "count": 1, "service": "route53-recovery-control-config"})
    assert error(world.cc.list_clusters)[:3] == (429, "ThrottlingException", "Rate exceeded")


def test_route53_control_plane_switch_leaves_arc_alone(emu, world):
    emu.post("control-plane", {"service": "route53", "down": True})
    world.set(use1="On")
    assert world.cc.list_clusters()["Clusters"]
    assert error(emu.client("route53").list_health_checks)[:2] == (503, "ServiceUnavailable")


def test_requests_are_logged_and_state_shows_arc(emu, world):
    emu.control("DELETE", "requests")
    world.set("eu-west-1", use1="On")
    world.cc.describe_cluster(ClusterArn=world.arn)
    entries = emu.get("requests")["requests"]
    assert [(e["region"], e["service"], e["operation"], e["status"]) for e in entries] == [
        ("eu-west-1", "route53-recovery-cluster", "UpdateRoutingControlStates", 200),
        ("us-west-2", "route53-recovery-control-config", "DescribeCluster", 200),
    ]
    state = emu.get("state")["arc"]
    assert [c["arn"] for c in state["clusters"]] == [world.arn]
    assert [p["arn"] for p in state["control_panels"]] == [world.panel]
    assert state["routing_control_states"] == {world.controls["use1"]: "On", world.controls["euw1"]: "Off", world.controls["apse2"]: "Off"}
    emu.post("reset")
    after = emu.get("state")
    assert after["arc"]["clusters"] == [] and after["arc_endpoints_down"] == []


# =============================================================================================
# Route 53 RECOVERY_CONTROL health checks
# =============================================================================================


def _recovery_check(r53: Any, control: str, **extra: Any) -> str:
    return r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "RECOVERY_CONTROL", "RoutingControlArn": control, **extra})["HealthCheck"]["Id"]


def _healthy(r53: Any, health_check_id: str) -> bool:
    statuses = {o["StatusReport"]["Status"] for o in r53.get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]}
    assert len(statuses) == 1, statuses
    return statuses.pop().startswith("Success")


def test_recovery_control_health_check_follows_the_routing_control(emu, world):
    r53 = emu.client("route53")
    hc = _recovery_check(r53, world.controls["use1"])
    config = r53.get_health_check(HealthCheckId=hc)["HealthCheck"]["HealthCheckConfig"]
    assert config == {"Type": "RECOVERY_CONTROL", "RoutingControlArn": world.controls["use1"], "Inverted": False, "Disabled": False}
    assert _healthy(r53, hc) is False  # a new routing control is Off
    world.set(use1="On")
    assert _healthy(r53, hc) is True
    inverted = _recovery_check(r53, world.controls["use1"], Inverted=True)
    assert _healthy(r53, inverted) is False
    assert world.cc.list_associated_route53_health_checks(RoutingControlArn=world.controls["use1"])["HealthCheckIds"] == [hc, inverted]
    # AWS does not update RECOVERY_CONTROL checks; ARNs must exist; no endpoint settings.
    assert error(r53.update_health_check, HealthCheckId=hc, Inverted=True)[:3] == (
        400, "InvalidInput", "Invalid parameter : Update is not supported for this health check type.")
    assert error(_recovery_check, r53, world.panel + "/routingcontrol/nope")[:2] == (400, "InvalidInput")
    assert error(_recovery_check, r53, world.controls["use1"], FailureThreshold=3)[:2] == (400, "InvalidInput")
    assert error(r53.create_health_check, CallerReference="x", HealthCheckConfig={"Type": "RECOVERY_CONTROL"})[:2] == (400, "InvalidInput")


def test_dns_latency_answer_follows_routing_controls(emu, world):
    r53 = emu.client("route53")
    zone = r53.create_hosted_zone(Name="example.com", CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
    values = {"us-east-1": "192.0.2.10", "eu-west-1": "192.0.2.20"}
    controls = {"us-east-1": world.controls["use1"], "eu-west-1": world.controls["euw1"]}
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "api.example.com", "Type": "A", "SetIdentifier": region, "Region": region, "TTL": 60,
        "HealthCheckId": _recovery_check(r53, controls[region]), "ResourceRecords": [{"Value": value}]}}
        for region, value in values.items()]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    world.set(use1="On", euw1="On")

    def answer() -> list[str]:
        return r53.test_dns_answer(HostedZoneId=zone, RecordName="api.example.com", RecordType="A",
                                   ResolverIP="192.0.2.44")["RecordData"]  # North America

    assert answer() == ["192.0.2.10"]
    world.set(use1="Off")  # evacuate us-east-1 through ARC
    assert answer() == ["192.0.2.20"]
    world.set(use1="On")
    assert answer() == ["192.0.2.10"]


# =============================================================================================
# IAM
# =============================================================================================


def _session(emu: Emulator, role: str, *statements: dict[str, Any]) -> dict[str, str]:
    emu.client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    emu.post("iam/role-policy", {"role_name": role, "policy_name": "p",
                                 "document": {"Version": "2012-10-17", "Statement": list(statements)}})
    return emu.post("iam/session", {"role_name": role, "session_name": "test"})


def _keys(creds: dict[str, str]) -> dict[str, str]:
    return dict(aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
                aws_session_token=creds["session_token"])


def test_iam_data_plane_per_routing_control_and_override_condition(emu, world):
    rule = world.assertion(["use1", "euw1"], threshold=1)
    world.set(use1="On", euw1="On")
    creds = _session(emu, "operator", {
        "Effect": "Allow", "Action": ["route53-recovery-cluster:UpdateRoutingControlState",
                                      "route53-recovery-cluster:UpdateRoutingControlStates",
                                      "route53-recovery-cluster:GetRoutingControlState"],
        "Resource": world.controls["use1"],
        "Condition": {"Bool": {"route53-recovery-cluster:AllowSafetyRulesOverrides": "false"}},
    })
    dp = world.dp("eu-west-1", **_keys(creds))
    dp.update_routing_control_state(RoutingControlArn=world.controls["use1"], RoutingControlState="Off")
    status, code, message, _ = error(dp.get_routing_control_state, RoutingControlArn=world.controls["euw1"])
    assert (status, code) == (403, "AccessDeniedException")
    assert message == (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/operator/test is not authorized to perform: "
                       f"route53-recovery-cluster:GetRoutingControlState on resource: {world.controls['euw1']} "
                       "because no identity-based policy allows the route53-recovery-cluster:GetRoutingControlState action")
    # A batch is authorized on each routing control in it.
    both = [{"RoutingControlArn": world.controls[n], "RoutingControlState": "On"} for n in ("use1", "euw1")]
    _, code, message, _ = error(dp.update_routing_control_states, UpdateRoutingControlStateEntries=both)
    assert code == "AccessDeniedException" and world.controls["euw1"] in message
    # Overriding a rule needs AllowSafetyRulesOverrides true: this policy allows only false.
    _, code, _, _ = error(dp.update_routing_control_state, RoutingControlArn=world.controls["use1"], RoutingControlState="On",
                          SafetyRulesToOverride=[rule])
    assert code == "AccessDeniedException"
    denied = emu.get("requests")["requests"][-1]["denied"]
    assert denied == {"action": "route53-recovery-cluster:UpdateRoutingControlState", "resource": world.controls["use1"]}
    assert world.states()["use1"] == "Off"
    # ListRoutingControls has no resource-level permission: only "*" grants it.
    assert error(dp.list_routing_controls)[1] == "AccessDeniedException"


def test_iam_config_resources(emu, world):
    creds = _session(emu, "viewer", {
        "Effect": "Allow", "Action": "route53-recovery-control-config:Describe*", "Resource": world.arn})
    cc = config_client(emu, **_keys(creds))
    assert cc.describe_cluster(ClusterArn=world.arn)["Cluster"]["ClusterArn"] == world.arn
    status, code, message, _ = error(cc.describe_control_panel, ControlPanelArn=world.panel)
    assert (status, code) == (403, "AccessDeniedException") and world.panel in message
    assert error(cc.list_clusters)[1] == "AccessDeniedException"
    # CreateSafetyRule is authorized on the cluster of its control panel.
    creds = _session(emu, "ruler", {"Effect": "Allow", "Action": "route53-recovery-control-config:CreateSafetyRule",
                                    "Resource": world.arn})
    rule = {"Name": "r", "ControlPanelArn": world.panel, "WaitPeriodMs": 0, "AssertedControls": [world.controls["use1"]],
            "RuleConfig": {"Type": "ATLEAST", "Threshold": 1, "Inverted": False}}
    config_client(emu, **_keys(creds)).create_safety_rule(AssertionRule=rule)
    # With Tags it also needs TagResource.
    _, code, message, _ = error(config_client(emu, **_keys(creds)).create_safety_rule,
                                AssertionRule={**rule, "Name": "r2"}, Tags={"k": "v"})
    assert code == "AccessDeniedException" and "TagResource" in message
