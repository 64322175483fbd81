"""IAM enforced per role: real resource ARNs, AWS's evaluation logic, the template's roles."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Emulator, wait_for
from multisite_emulator import iam

ACCOUNT = "123456789012"
EU, US = "eu-west-1", "us-east-1"
REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "template.yaml")
PARAMS = REPO / "tests" / "deploy" / "params"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


# -- helpers -------------------------------------------------------------------------------


def table_arn(name: str, region: str = EU) -> str:
    return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def make_table(emu: Emulator, name: str, region: str = EU, index: str | None = None) -> None:
    kwargs: dict[str, Any] = {}
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if index:
        attributes.append({"AttributeName": "g", "AttributeType": "S"})
        kwargs["GlobalSecondaryIndexes"] = [
            {"IndexName": index, "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}}
        ]
    emu.client("dynamodb", region).create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST", **kwargs,
    )


def role_session(emu: Emulator, name: str, *statements: dict[str, Any]) -> dict[str, str]:
    """A role with one inline policy of ``statements`` (created with the admin key) and a session."""
    emu.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    set_policy(emu, name, list(statements))
    return emu.post("iam/session", {"role_name": name, "session_name": "test"})


def set_policy(emu: Emulator, role: str, statements: list[dict[str, Any]] | None, policy: str = "p") -> None:
    document = None if statements is None else {"Version": "2012-10-17", "Statement": statements}
    emu.post("iam/role-policy", {"role_name": role, "policy_name": policy, "document": document})


def allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def client(emu: Emulator, creds: dict[str, str], service: str, region: str = EU) -> Any:
    return boto3.client(
        service, region_name=region, endpoint_url=emu.url,
        aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
        aws_session_token=creds["session_token"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


def denied(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a call that must fail."""
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    return denied(call, *args, **kwargs)[1]


KEY = {"pk": {"S": "k"}}


# -- DynamoDB: table, Region, action ---------------------------------------------------------


def test_get_item_allowed_only_on_the_table_region_and_action_granted(emu):
    make_table(emu, "A")
    make_table(emu, "B")
    make_table(emu, "A", US)
    creds = role_session(emu, "reader", allow("dynamodb:GetItem", table_arn("A")))
    ddb = client(emu, creds, "dynamodb")

    assert "Item" not in ddb.get_item(TableName="A", Key=KEY)

    status, code, message = denied(ddb.get_item, TableName="B", Key=KEY)
    assert (status, code) == (400, "AccessDeniedException")
    assert message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/reader/test is not authorized to perform: dynamodb:GetItem"
        f" on resource: {table_arn('B')} because no identity-based policy allows the dynamodb:GetItem action"
    )
    _, code, message = denied(client(emu, creds, "dynamodb", US).get_item, TableName="A", Key=KEY)
    assert code == "AccessDeniedException" and table_arn("A", US) in message
    _, code, message = denied(
        ddb.update_item, TableName="A", Key=KEY, UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "x"}},
    )
    assert code == "AccessDeniedException" and "dynamodb:UpdateItem" in message


def test_explicit_deny_overrides_allow(emu):
    make_table(emu, "A")
    creds = role_session(
        emu, "denied", allow("dynamodb:*", "*"),
        {"Effect": "Deny", "Action": "dynamodb:Get*", "Resource": table_arn("A")},
    )
    ddb = client(emu, creds, "dynamodb")
    ddb.put_item(TableName="A", Item=KEY)
    _, code, message = denied(ddb.get_item, TableName="A", Key=KEY)
    assert code == "AccessDeniedException"
    assert message.endswith("with an explicit deny in an identity-based policy: p")


def test_not_action_and_not_resource(emu):
    make_table(emu, "A")
    make_table(emu, "B")
    creds = role_session(
        emu, "negated",
        {"Effect": "Allow", "NotAction": ["dynamodb:Delete*", "dynamodb:update?tem"], "Resource": table_arn("*")},
        {"Effect": "Deny", "Action": "dynamodb:PutItem", "NotResource": table_arn("A")},
    )
    ddb = client(emu, creds, "dynamodb")
    ddb.put_item(TableName="A", Item=KEY)
    assert "Item" not in ddb.get_item(TableName="B", Key=KEY)
    assert "explicit deny" in denied(ddb.put_item, TableName="B", Item=KEY)[2]
    assert error_code(ddb.delete_item, TableName="A", Key=KEY) == "AccessDeniedException"
    # NotAction matches case-insensitively with "?" wildcards: UpdateItem is excluded.
    assert error_code(
        ddb.update_item, TableName="A", Key=KEY, UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "x"}},
    ) == "AccessDeniedException"


def test_condition_on_requested_region(emu):
    creds = role_session(
        emu, "regional",
        allow("dynamodb:ListTables", "*", Condition={"StringEquals": {"aws:RequestedRegion": [EU, "eu-west-2"]}}),
    )
    assert client(emu, creds, "dynamodb").list_tables()["TableNames"] == []
    _, code, message = denied(client(emu, creds, "dynamodb", US).list_tables)
    assert code == "AccessDeniedException" and "on resource: *" in message


def test_query_on_index_and_transaction_elements_are_authorized_per_resource_and_action(emu):
    make_table(emu, "A", index="byG")
    creds = role_session(
        emu, "indexed",
        allow("dynamodb:Query", f"{table_arn('A')}/index/byG"),
        allow(["dynamodb:PutItem", "dynamodb:ConditionCheckItem"], table_arn("A")),
    )
    ddb = client(emu, creds, "dynamodb")
    query = {"KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "x"}}}
    assert ddb.query(TableName="A", IndexName="byG", **query)["Items"] == []
    assert f"on resource: {table_arn('A')} " in denied(
        ddb.query, TableName="A", KeyConditionExpression="pk = :g", ExpressionAttributeValues={":g": {"S": "x"}}
    )[2]
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "A", "Item": KEY}}])
    _, _, message = denied(
        ddb.transact_write_items,
        TransactItems=[{"Put": {"TableName": "A", "Item": {"pk": {"S": "k2"}}}},
                       {"Delete": {"TableName": "A", "Key": KEY}}],
    )
    assert "perform: dynamodb:DeleteItem" in message


def test_adding_a_replica_needs_the_documented_actions_in_the_destination_region(emu):
    make_table(emu, "G")
    creds = role_session(emu, "provisioner", allow("dynamodb:UpdateTable", table_arn("G")))
    ddb = client(emu, creds, "dynamodb")
    _, code, message = denied(ddb.update_table, TableName="G", ReplicaUpdates=[{"Create": {"RegionName": US}}])
    assert code == "AccessDeniedException"
    assert f"perform: dynamodb:CreateTable on resource: {table_arn('G', US)} " in message

    set_policy(emu, "provisioner", [
        allow("dynamodb:UpdateTable", table_arn("G")),
        allow(list(iam.REPLICA_CREATE_ACTIONS), table_arn("G", US)),
    ])
    ddb.update_table(TableName="G", ReplicaUpdates=[{"Create": {"RegionName": US}}])


def test_an_mrsc_witness_needs_create_and_delete_global_table_witness_in_its_region(emu):
    # An MRSC set from us-east-1: a replica in us-east-2, the witness in us-west-2.
    home, replica, witness = "us-east-1", "us-east-2", "us-west-2"
    admin = emu.client("dynamodb", home)
    admin.create_table(
        TableName="M",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    replica_grant = [
        allow("dynamodb:UpdateTable", table_arn("M", home)),
        allow(list(iam.REPLICA_CREATE_ACTIONS + iam.REPLICA_DELETE_ACTIONS), table_arn("M", replica)),
    ]
    creds = role_session(emu, "provisioner", *replica_grant)
    ddb = client(emu, creds, "dynamodb", home)
    create = {
        "TableName": "M",
        "ReplicaUpdates": [{"Create": {"RegionName": replica}}],
        "MultiRegionConsistency": "STRONG",
        "GlobalTableWitnessUpdates": [{"Create": {"RegionName": witness}}],
    }
    _, code, message = denied(ddb.update_table, **create)
    assert code == "AccessDeniedException"
    assert f"perform: dynamodb:CreateGlobalTableWitness on resource: {table_arn('M', witness)} " in message

    set_policy(emu, "provisioner", [*replica_grant, allow("dynamodb:CreateGlobalTableWitness", table_arn("M", witness))])
    ddb.update_table(**create)
    wait_for(lambda: admin.describe_table(TableName="M")["Table"]["TableStatus"] == "ACTIVE")
    dissolve = {
        "TableName": "M",
        "ReplicaUpdates": [{"Delete": {"RegionName": replica}}],
        "GlobalTableWitnessUpdates": [{"Delete": {"RegionName": witness}}],
    }
    _, code, message = denied(ddb.update_table, **dissolve)
    assert f"perform: dynamodb:DeleteGlobalTableWitness on resource: {table_arn('M', witness)} " in message
    set_policy(emu, "provisioner", [*replica_grant, allow(list(iam.WITNESS_ACTIONS.values()), table_arn("M", witness))])
    ddb.update_table(**dissolve)


# -- IAM, Route 53, RDS, Auto Scaling, CloudWatch, Lambda ----------------------------------


def test_create_service_linked_role_condition_on_aws_service_name(emu):
    service = "replication.dynamodb.amazonaws.com"
    slr = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{service}/AWSServiceRoleForDynamoDBReplication"
    creds = role_session(
        emu, "slr",
        allow("iam:CreateServiceLinkedRole", "arn:aws:iam::*:role/aws-service-role/*",
              Condition={"StringEquals": {"iam:AWSServiceName": service}}),
    )
    role_iam = client(emu, creds, "iam", US)
    role_iam.create_service_linked_role(AWSServiceName=service)
    status, code, message = denied(role_iam.create_service_linked_role, AWSServiceName="autoscaling.amazonaws.com")
    assert (status, code) == (403, "AccessDenied")
    assert "AWSServiceRoleForAutoScaling" in message and slr not in message


def test_route53_health_check_scoped_by_id(emu):
    r53 = emu.client("route53")
    config = {"Type": "HTTPS", "FullyQualifiedDomainName": "a.example.com", "Port": 443}
    ids = [r53.create_health_check(CallerReference=f"c{i}", HealthCheckConfig=config)["HealthCheck"]["Id"]
           for i in range(2)]
    creds = role_session(emu, "r53", allow("route53:GetHealthCheck", f"arn:aws:route53:::healthcheck/{ids[0]}"))
    role_r53 = client(emu, creds, "route53", US)
    assert role_r53.get_health_check(HealthCheckId=ids[0])["HealthCheck"]["Id"] == ids[0]
    status, code, message = denied(role_r53.get_health_check, HealthCheckId=ids[1])
    assert (status, code) == (403, "AccessDenied")
    assert f"arn:aws:route53:::healthcheck/{ids[1]}" in message


def make_global_cluster(emu: Emulator) -> dict[str, str]:
    """Global cluster "g1" with writer "c-east" (us-east-1) and reader "c-west" (eu-west-1)."""
    emu.client("rds", US).create_global_cluster(GlobalClusterIdentifier="g1", Engine="aurora-postgresql")
    arns = {}
    for region, name in ((US, "c-east"), (EU, "c-west")):
        extra = {"MasterUsername": "app", "MasterUserPassword": "correct-horse-battery"} if region == US else {}
        arns[region] = emu.client("rds", region).create_db_cluster(
            DBClusterIdentifier=name, Engine="aurora-postgresql", GlobalClusterIdentifier="g1", **extra
        )["DBCluster"]["DBClusterArn"]
    return arns


def test_failover_global_cluster_needs_the_global_cluster_and_the_target_cluster(emu):
    arns = make_global_cluster(emu)
    global_arn = f"arn:aws:rds::{ACCOUNT}:global-cluster:g1"
    creds = role_session(emu, "failover", allow("rds:FailoverGlobalCluster", global_arn))
    rds = client(emu, creds, "rds")
    status, code, message = denied(
        rds.failover_global_cluster, GlobalClusterIdentifier="g1", TargetDbClusterIdentifier=arns[EU],
        AllowDataLoss=True,
    )
    assert (status, code) == (403, "AccessDenied") and f"on resource: {arns[EU]} " in message

    set_policy(emu, "failover", [allow("rds:FailoverGlobalCluster", [global_arn, arns[EU]])])
    result = rds.failover_global_cluster(
        GlobalClusterIdentifier="g1", TargetDbClusterIdentifier=arns[EU], AllowDataLoss=True
    )
    assert result["GlobalCluster"]["FailoverState"]["ToDbClusterArn"] == arns[EU]


def test_update_auto_scaling_group_scoped_by_name_with_any_uuid(emu):
    asg = emu.client("autoscaling", EU)
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12345678", InstanceType="t3.micro")
    for name in ("web-eu", "batch-eu"):
        asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName="lc", MinSize=0,
                                      MaxSize=2, DesiredCapacity=0, AvailabilityZones=[f"{EU}a"])
    pattern = f"arn:aws:autoscaling:{EU}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/web-eu"
    creds = role_session(emu, "scaler", allow("autoscaling:UpdateAutoScalingGroup", pattern))
    role_asg = client(emu, creds, "autoscaling")
    role_asg.update_auto_scaling_group(AutoScalingGroupName="web-eu", MaxSize=4)
    real_arn = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["batch-eu"])["AutoScalingGroups"][0][
        "AutoScalingGroupARN"]
    status, code, message = denied(role_asg.update_auto_scaling_group, AutoScalingGroupName="batch-eu", MaxSize=4)
    assert (status, code) == (403, "AccessDenied") and f"on resource: {real_arn} " in message
    assert error_code(role_asg.describe_auto_scaling_groups) == "AccessDenied"


def test_cloudwatch_alarm_operations_scoped_by_alarm_name(emu):
    creds = role_session(
        emu, "alarms", allow("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{EU}:{ACCOUNT}:alarm:web-*")
    )
    cw = client(emu, creds, "cloudwatch")
    assert cw.describe_alarms(AlarmNames=["web-eu-unhealthy"])["MetricAlarms"] == []
    status, code, message = denied(cw.describe_alarms, AlarmNames=["web-eu-unhealthy", "db-eu"])
    assert (status, code) == (403, "AccessDenied")
    assert f"arn:aws:cloudwatch:{EU}:{ACCOUNT}:alarm:db-eu" in message
    assert error_code(cw.describe_alarms) == "AccessDenied"  # no names: "*", not granted


def test_sns_publish_scoped_by_topic_arn(emu):
    admin = boto3.client("sns", region_name=EU, endpoint_url=emu.url, aws_access_key_id="admin",
                         aws_secret_access_key="admin")
    ops = admin.create_topic(Name="ops")["TopicArn"]
    other = admin.create_topic(Name="other")["TopicArn"]
    creds = role_session(emu, "publisher", allow("sns:Publish", ops))
    sns = client(emu, creds, "sns")
    assert sns.publish(TopicArn=ops, Message="pending approval")["MessageId"]
    status, code, message = denied(sns.publish, TopicArn=other, Message="x")
    assert (status, code) == (403, "AuthorizationError") or (status, code) == (403, "AccessDenied"), (status, code)
    assert other in message


def raw_monitoring_call(emu: Emulator, creds: dict[str, str], body: bytes, headers: dict[str, str],
                        path: str = "/") -> tuple[int, dict[str, str], bytes]:
    """A CloudWatch call in a protocol boto3 does not speak here (signatures are not checked)."""
    scope = f"{creds['access_key_id']}/20260101/{EU}/monitoring/aws4_request"
    request = urllib.request.Request(emu.url + path, data=body, method="POST", headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
        "X-Amz-Security-Token": creds["session_token"], **headers,
    })
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_cloudwatch_query_and_cbor_denials_in_their_own_protocol(emu):
    cbor = pytest.importorskip("multisite_emulator.cloudwatch_cbor")
    creds = role_session(
        emu, "alarms", allow("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{EU}:{ACCOUNT}:alarm:web-*")
    )
    denied_arn = f"arn:aws:cloudwatch:{EU}:{ACCOUNT}:alarm:db-eu"

    def query(name: str) -> tuple[int, dict[str, str], bytes]:
        form = f"Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1={name}".encode()
        return raw_monitoring_call(emu, creds, form, {"Content-Type": "application/x-www-form-urlencoded"})

    assert query("web-eu")[0] == 200
    status, _, body = query("db-eu")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and denied_arn.encode() in body

    def rpc(name: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"}
        return raw_monitoring_call(emu, creds, cbor.encode_cbor({"AlarmNames": [name]}), headers,
                                   "/service/GraniteServiceVersion20100801/operation/DescribeAlarms")

    assert rpc("web-eu")[0] == 200
    status, headers, body = rpc("db-eu")
    assert status == 403 and headers["x-amzn-query-error"] == "AccessDenied;Sender"
    error = cbor.decode_cbor(body)
    assert error["__type"] == "com.amazon.coral.service#AccessDeniedException" and denied_arn in error["message"]


def test_lambda_invoke_with_qualifier_needs_the_qualified_arn(emu):
    function = f"arn:aws:lambda:{EU}:{ACCOUNT}:function:worker"
    creds = role_session(emu, "invoker", allow("lambda:InvokeFunction", function))
    lam = client(emu, creds, "lambda")
    # Allowed (moto then answers: no such function); the qualified ARN is another resource.
    assert error_code(lam.invoke, FunctionName="worker") == "ResourceNotFoundException"
    status, code, message = denied(lam.invoke, FunctionName="worker", Qualifier="live")
    assert (status, code) == (403, "AccessDeniedException") and f"on resource: {function}:live " in message
    assert f"{function}:7 " in denied(lam.invoke, FunctionName=f"{ACCOUNT}:function:worker:7")[2]
    other = f"arn:aws:lambda:{US}:{ACCOUNT}:function:worker"
    assert f"on resource: {other} " in denied(lam.invoke, FunctionName=other)[2]

    set_policy(emu, "invoker", [allow("lambda:InvokeFunction", [function, f"{function}:*"])])
    assert error_code(lam.invoke, FunctionName="worker", Qualifier="live") == "ResourceNotFoundException"


def test_ssm_get_parameter_is_checked_against_the_parameter_arn(emu):
    # The functions read their topology from /multisite/<stack>/topology (template.yaml).
    emu.client("ssm", EU).put_parameter(Name="/multisite/s/topology", Value="{}", Type="String")
    emu.client("ssm", EU).put_parameter(Name="/multisite/other/topology", Value="{}", Type="String")
    mine = f"arn:aws:ssm:{EU}:{ACCOUNT}:parameter/multisite/s/topology"
    creds = role_session(emu, "reader", allow("ssm:GetParameter", mine))
    ssm = client(emu, creds, "ssm")
    got = ssm.get_parameter(Name="/multisite/s/topology")["Parameter"]
    assert (got["Value"], got["Version"]) == ("{}", 1)
    assert ssm.get_parameter(Name=mine)["Parameter"]["Value"] == "{}", "by ARN"
    assert ssm.get_parameter(Name="/multisite/s/topology:1")["Parameter"]["Value"] == "{}", "a version selector"
    status, code, message = denied(ssm.get_parameter, Name="/multisite/other/topology")
    assert (status, code) == (400, "AccessDeniedException"), (status, code)
    assert f"ssm:GetParameter on resource: arn:aws:ssm:{EU}:{ACCOUNT}:parameter/multisite/other/topology" in message
    # The same name in another Region is another resource.
    emu.client("ssm", US).put_parameter(Name="/multisite/s/topology", Value="{}", Type="String")
    assert f"parameter/multisite/s/topology" in denied(client(emu, creds, "ssm", US).get_parameter, Name="/multisite/s/topology")[2]


# -- identities -------------------------------------------------------------------------


def test_admin_key_is_allowed_everything_and_sessions_from_sts_count(emu):
    make_table(emu, "A")
    admin = emu.client("dynamodb", EU)
    admin.put_item(TableName="A", Item=KEY)
    emu.client("iam").create_role(RoleName="via-sts", AssumeRolePolicyDocument=json.dumps(TRUST))
    set_policy(emu, "via-sts", [allow("dynamodb:*", "*")])
    assumed = emu.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/via-sts", RoleSessionName="s1",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [allow("dynamodb:GetItem", "*")]}),
    )["Credentials"]
    creds = {"access_key_id": assumed["AccessKeyId"], "secret_access_key": assumed["SecretAccessKey"],
             "session_token": assumed["SessionToken"]}
    ddb = client(emu, creds, "dynamodb")
    assert ddb.get_item(TableName="A", Key=KEY)["Item"] == KEY
    # The session policy given to AssumeRole narrows the role's own policies.
    assert "because no session policy allows" in denied(ddb.put_item, TableName="A", Item=KEY)[2]
    assert client(emu, creds, "sts").get_caller_identity()["Arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/via-sts/s1"
    )


def test_request_log_records_principal_and_denial(emu):
    make_table(emu, "A")
    creds = role_session(emu, "logged", allow("dynamodb:GetItem", table_arn("A")))
    emu.control("DELETE", "requests")
    ddb = client(emu, creds, "dynamodb")
    ddb.get_item(TableName="A", Key=KEY)
    denied(ddb.put_item, TableName="A", Item=KEY)
    emu.client("dynamodb", EU).list_tables()
    log = emu.get("requests")["requests"]
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/logged/test"
    assert [(r["operation"], r["status"], r["principal"], r.get("denied")) for r in log] == [
        ("GetItem", 200, principal, None),
        ("PutItem", 400, principal, {"action": "dynamodb:PutItem", "resource": table_arn("A")}),
        ("ListTables", 200, "admin", None),
    ]


def test_outage_answers_503_before_authorization(emu):
    creds = role_session(emu, "nothing", allow("s3:GetObject", "*"))
    emu.post("outage", {"region": EU, "down": True})
    assert denied(client(emu, creds, "dynamodb").list_tables)[:2] == (503, "ServiceUnavailable")


def test_policy_change_applies_to_the_next_call(emu):
    make_table(emu, "A")
    creds = role_session(emu, "changing", allow(["dynamodb:GetItem", "dynamodb:PutItem"], table_arn("A")))
    ddb = client(emu, creds, "dynamodb")
    ddb.put_item(TableName="A", Item=KEY)
    set_policy(emu, "changing", [allow("dynamodb:GetItem", table_arn("A"))])
    assert error_code(ddb.put_item, TableName="A", Item=KEY) == "AccessDeniedException"
    set_policy(emu, "changing", None)
    assert error_code(ddb.get_item, TableName="A", Key=KEY) == "AccessDeniedException"


# -- the template's roles ------------------------------------------------------------------


def template_roles(emu: Emulator, params: str = "three-regions-aurora.json", **extra: Any) -> dict[str, Any]:
    body = {"template": TEMPLATE, "parameters": json.loads((PARAMS / params).read_text()), "region": EU,
            "stack_name": "multisite-eu-west-1", **extra}
    return emu.post("iam/template-roles", body)


def test_template_roles_failover_role_updates_the_topology_health_checks(emu):
    params = json.loads((PARAMS / "three-regions-aurora.json").read_text())
    out = template_roles(emu)
    failover = out["roles"]["FailoverRole"]
    assert failover["role_name"] == "multisite-eu-west-1-FailoverRole"
    assert failover["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/multisite-eu-west-1-FailoverRole"
    assert out["functions"]["FailoverFunction"] == {
        "role": "FailoverRole", "function_name": "multisite-eu-west-1-FailoverFunction",
        "function_arn": f"arn:aws:lambda:{EU}:{ACCOUNT}:function:multisite-eu-west-1-FailoverFunction",
    }
    statements = {s["Sid"]: s for s in failover["policies"]["failover"]["Statement"]}
    assert statements["Logs"]["Resource"] == (
        f"arn:aws:logs:{EU}:{ACCOUNT}:log-group:/multisite/multisite-eu-west-1/failover:*"
    )
    continuation = out["roles"]["ProvisionerRole"]["policies"]["provisioner-continuation"]
    provisioner_arn = out["functions"]["ProvisionerFunction"]["function_arn"]
    assert continuation["Statement"][0]["Resource"] == [provisioner_arn, f"{provisioner_arn}:*"]

    creds = emu.post("iam/session", {"role_name": failover["role_name"]})
    assert creds["assumed_role_arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{failover['role_name']}/multisite"
    r53 = client(emu, creds, "route53", US)
    # Authorized: moto then answers that the (parameter's) health check does not exist.
    hc = params["Region2HealthCheckId"]
    assert error_code(r53.update_health_check, HealthCheckId=hc, Inverted=True) == "NoSuchHealthCheck"
    assert error_code(r53.update_health_check, HealthCheckId="44444444-4444-4444-8444-444444444444",
                      Inverted=True) == "AccessDenied"
    # Removing one action from the live policy denies it on the next call.
    trimmed = json.loads(json.dumps(failover["policies"]["failover"]))
    for statement in trimmed["Statement"]:
        if statement["Sid"] == "HealthChecks":
            statement["Action"] = ["route53:GetHealthCheck"]
    emu.post("iam/role-policy", {"role_name": failover["role_name"], "policy_name": "failover", "document": trimmed})
    assert error_code(r53.update_health_check, HealthCheckId=hc, Inverted=True) == "AccessDenied"
    assert error_code(r53.get_health_check, HealthCheckId=hc) == "NoSuchHealthCheck"


def test_template_roles_are_replaced_on_repost_and_cleared_by_reset(emu):
    first = template_roles(emu)
    again = template_roles(emu)
    assert again == first
    names = sorted(r["role_name"] for r in emu.get("iam/roles")["roles"])
    assert names == sorted(r["role_name"] for r in first["roles"].values())
    assert len(names) == 4
    emu.post("reset")
    assert emu.get("iam/roles") == {"roles": [], "stacks": {}}


ARC = "route53-recovery-cluster"
ARC_WRITES = (f"{ARC}:UpdateRoutingControlStates", f"{ARC}:UpdateRoutingControlState")
# What an identity could otherwise do to the routing setup itself: the control-config API.
ARC_CONFIG = tuple(
    f"route53-recovery-control-config:{a}"
    for a in ("UpdateSafetyRule", "DeleteSafetyRule", "CreateSafetyRule", "UpdateRoutingControl",
              "DeleteRoutingControl", "DeleteControlPanel", "DeleteCluster")
)
OVERRIDE = {f"{ARC}_AllowSafetyRulesOverrides": "true"}


def arc_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document that name an ARC (route53-recovery-*) action."""
    def actions(statement: dict[str, Any]) -> list[str]:
        return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
    return [s for s in document["Statement"] if any(a.startswith("route53-recovery") for a in actions(s))]


def test_template_roles_with_arc_let_failover_set_only_the_cells_routing_controls(emu):
    params = json.loads((PARAMS / "arc-four-regions.json").read_text())
    controls = [params[f"Region{n}RoutingControlArn"] for n in "1234"]
    panel = params["ArcControlPanelArn"]
    out = template_roles(emu, "arc-four-regions.json")
    failover = out["roles"]["FailoverRole"]["policies"]["failover"]
    statements = failover["Statement"]

    # The ARC statements: state reads and writes on the cells' controls, the list (no resource-level
    # permission), and the explicit Deny of safety-rule overrides. No route53 health check at all.
    by_sid = {s["Sid"]: s for s in arc_statements(failover)}
    assert set(by_sid) == {"RoutingControls", "ListRoutingControls", "NeverOverrideSafetyRules"}
    assert by_sid["RoutingControls"]["Effect"] == "Allow"
    assert by_sid["RoutingControls"]["Action"] == f"{ARC}:UpdateRoutingControlStates"  # its one call
    assert by_sid["RoutingControls"]["Resource"] == controls
    assert by_sid["ListRoutingControls"] == {
        "Sid": "ListRoutingControls", "Effect": "Allow", "Action": f"{ARC}:ListRoutingControls", "Resource": "*"}
    assert by_sid["NeverOverrideSafetyRules"]["Effect"] == "Deny"
    assert by_sid["NeverOverrideSafetyRules"]["Condition"] == {
        "Bool": {f"{ARC}:AllowSafetyRulesOverrides": "true"}}
    assert not [s for s in statements if "HealthChecks" == s.get("Sid")], "arc: no health check statement"

    # Evaluated as IAM would: UpdateRoutingControlStates on each cell's control, nothing else of ARC.
    for control in controls:
        assert evaluate(statements, f"{ARC}:UpdateRoutingControlStates", control)
        for action in ARC_WRITES:
            assert not evaluate(statements, action, control, **OVERRIDE), "never override a safety rule"
    other = f"{panel}/routingcontrol/ffffffffffffffff"
    assert not evaluate(statements, f"{ARC}:UpdateRoutingControlStates", other), "not another control"
    assert not evaluate(statements, f"{ARC}:UpdateRoutingControlStates", "*")
    for action in ARC_CONFIG:
        for resource in (params["ArcSafetyRuleArn"], panel, params["ArcClusterArn"], controls[0], "*"):
            assert not evaluate(statements, action, resource), (action, resource)
    for n in "1234":
        health_check = f"arn:aws:route53:::healthcheck/{params[f'Region{n}HealthCheckId']}"
        assert not evaluate(statements, "route53:UpdateHealthCheck", health_check)

    # lag-probe lists the states (its one ARC call), writes none, reads no health check.
    lag_probe = out["roles"]["LagProbeRole"]["policies"]["lag-probe"]["Statement"]
    for control in controls:
        assert not evaluate(lag_probe, f"{ARC}:GetRoutingControlState", control)
        for action in ARC_WRITES:
            assert not evaluate(lag_probe, action, control)
    assert evaluate(lag_probe, f"{ARC}:ListRoutingControls", "*")
    assert not [s for s in lag_probe if s.get("Sid") == "HealthChecks"], "arc: lag-probe reads no health check"
    # The scaler and the provisioner have no ARC permission at all.
    for role, policy in (("ScalerRole", "scaler"), ("ProvisionerRole", "provisioner")):
        assert not arc_statements(out["roles"][role]["policies"][policy]), role


def test_template_roles_with_arc_create_name_the_created_controls_in_aws_format(emu):
    """ArcResources=create (the Region1 stack): the roles name the routing controls and health checks
    the stack creates, rendered as AWS would (ARNs of the created control panel's controls)."""
    out = template_roles(emu, "arc-create.json", region=US, stack_name="multisite-us-east-1")
    failover = out["roles"]["FailoverRole"]["policies"]["failover"]
    controls = {s["Sid"]: s for s in arc_statements(failover)}["RoutingControls"]["Resource"]
    assert len(controls) == 3, "one per cell"
    panel = re.compile(rf"^arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/[0-9a-f]{{32}}$")
    prefixes = {c.rsplit("/routingcontrol/", 1)[0] for c in controls}
    assert len(prefixes) == 1 and panel.match(prefixes.pop()), controls
    assert all(re.fullmatch(r".*/routingcontrol/[0-9a-f]{16}", c) for c in controls), controls
    for control in controls:
        assert evaluate(failover["Statement"], f"{ARC}:UpdateRoutingControlStates", control)
        assert not evaluate(failover["Statement"], f"{ARC}:UpdateRoutingControlStates", control, **OVERRIDE)
    # lag-probe lists the controls (no resource-level permission) and reads no health check.
    lag_probe = {s["Sid"]: s for s in out["roles"]["LagProbeRole"]["policies"]["lag-probe"]["Statement"]}
    assert lag_probe["ListRoutingControls"]["Resource"] == "*"
    assert "HealthChecks" not in lag_probe and "RoutingControlStates" not in lag_probe, sorted(lag_probe)


def test_bad_control_input_answers_400(emu):
    for path, body in (
        ("iam/session", {}),
        ("iam/session", {"role_name": "missing"}),
        ("iam/role-policy", {"role_name": "missing", "policy_name": "p", "document": {"Statement": []}}),
        ("iam/role-policy", {"role_name": "r", "policy_name": "p"}),
        ("iam/template-roles", {"template": "template.yaml", "parameters": {}, "region": EU}),
        ("iam/template-roles", {"template": "/nonexistent/template.yaml", "parameters": {}, "region": EU}),
        ("iam/template-roles", {"template": TEMPLATE, "parameters": [], "region": EU}),
    ):
        status, payload = emu.control("POST", path, body)
        assert status == 400 and payload["error"], (path, body, payload)
    emu.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(TRUST))
    status, payload = emu.control("POST", "iam/role-policy", {"role_name": "r", "policy_name": "p",
                                                              "document": {"Statement": [{"Effect": "Allow"}]}})
    assert status == 400 and payload["error"]
    body = {"template": TEMPLATE, "parameters": json.loads((PARAMS / "invalid-region-name.json").read_text()),
            "region": EU}
    status, payload = emu.control("POST", "iam/template-roles", body)
    assert status == 400 and payload["error"] == "parameters rejected"
    assert any("Region2" in problem for problem in payload["problems"])


# -- evaluation details (in-process: no emulator needed) ------------------------------------


def evaluate(statements: list[dict[str, Any]], action: str, resource: str, **context: str) -> bool:
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    gate = iam._Gate("identity-based policy", "an", (("p", iam.compile_policy(document)),))
    ctx = {k.replace("_", ":", 1).lower(): (v,) for k, v in context.items()}
    return iam.evaluate("arn:aws:sts::1:assumed-role/r/s", [gate], [iam.Check(action, resource)], ctx) is None


@pytest.mark.parametrize(
    "resource_pattern, resource, allowed",
    [
        ("arn:aws:dynamodb:*:123456789012:table/T", "arn:aws:dynamodb:us-east-1:123456789012:table/T", True),
        ("arn:aws:dynamodb:eu-*:123456789012:table/T", "arn:aws:dynamodb:us-east-1:123456789012:table/T", False),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/*", "arn:aws:dynamodb:us-east-1:123456789012:table/T/index/I", True),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/t", "arn:aws:dynamodb:us-east-1:123456789012:table/T", False),
        ("arn:aws:lambda:us-east-1:1:function:f", "arn:aws:lambda:us-east-1:1:function:f:prod", False),
        ("arn:aws:lambda:us-east-1:1:function:f*", "arn:aws:lambda:us-east-1:1:function:f:prod", True),
        ("arn:aws:lambda:us-east-1:1:function:f?", "arn:aws:lambda:us-east-1:1:function:f1", True),
        ("arn:aws:lambda:us-east-1:1:fun*on:f", "arn:aws:lambda:us-east-1:1:function:f", True),
        ("arn:aws:*:us-east-1:1:function:f", "arn:aws:lambda:us-east-1:1:function:f", False),  # service wildcard
        ("arn:aws:lambda:us-east-1:1:function:${aws:username}", "arn:aws:lambda:us-east-1:1:function:f", False),
        ("*", "*", True),
        ("arn:aws:dynamodb:*", "*", False),
    ],
)
def test_resource_patterns(resource_pattern, resource, allowed):
    assert evaluate([allow("svc:Do", resource_pattern)], "svc:Do", resource) is allowed


def test_unevaluable_patterns_make_a_deny_apply():
    statements = [allow("*", "*"), {"Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::${aws:username}/*"}]
    assert not evaluate(statements, "s3:GetObject", "arn:aws:s3:::b/k")


@pytest.mark.parametrize(
    "condition, context, allowed",
    [
        ({"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}, {"aws_RequestedRegion": "us-east-1"}, True),
        ({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}, {}, False),  # missing key: positive is false
        ({"StringNotEquals": {"aws:RequestedRegion": ["a", "b"]}}, {"aws_RequestedRegion": "b"}, False),  # NOR
        ({"StringNotEquals": {"aws:RequestedRegion": "a"}}, {}, True),  # missing key: negated is true
        ({"StringEqualsIfExists": {"aws:RequestedRegion": "a"}}, {}, True),
        ({"StringEqualsIgnoreCase": {"AWS:requestedregion": "EU-West-1"}}, {"aws_RequestedRegion": "eu-west-1"}, True),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app-?"}}, {"aws_PrincipalArn": "arn:aws:iam::1:role/app-1"}, True),
        ({"StringNotLike": {"aws:PrincipalArn": "*admin*"}}, {"aws_PrincipalArn": "arn:aws:iam::1:role/admin"}, False),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app*"}}, {"aws_PrincipalArn": "arn:aws:iam::1:role/app-1"}, True),
        ({"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/x"}}, {"aws_PrincipalArn": "arn:aws:iam::1:role/y"}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws_SecureTransport": "true"}, True),
        ({"Bool": {"aws:SecureTransport": False}}, {"aws_SecureTransport": "true"}, False),
        ({"Null": {"aws:SourceIp": "true"}}, {}, True),
        ({"Null": {"aws:SourceIp": "false"}}, {}, False),
        ({"NumericLessThan": {"aws:EpochTime": "2000000000"}}, {"aws_EpochTime": "1900000000"}, True),
        ({"NumericGreaterThanEquals": {"aws:EpochTime": "oops"}}, {"aws_EpochTime": "1"}, False),
        ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, {"aws_CurrentTime": "2026-01-01T00:00:00Z"}, True),
        ({"DateLessThan": {"aws:CurrentTime": "2020-01-01"}}, {"aws_CurrentTime": "2026-01-01T00:00:00Z"}, False),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws_SourceIp": "10.1.2.3"}, True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}, {}, False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}, {}, True),
        ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws_TagKeys": "key2"}, True),
        ({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}, "Bool": {"aws:SecureTransport": "false"}},
         {"aws_RequestedRegion": "eu-west-1", "aws_SecureTransport": "true"}, False),  # operators AND-ed
        ({"StringEquals": {"aws:RequestedRegion": "eu-west-1", "aws:PrincipalAccount": "1"}},
         {"aws_RequestedRegion": "eu-west-1"}, False),  # keys AND-ed
        ({"StringEquals": {"aws:username": "${aws:username}"}}, {"aws_username": "x"}, False),
    ],
)
def test_condition_operators(condition, context, allowed):
    assert evaluate([allow("svc:Do", "*", Condition=condition)], "svc:Do", "*", **context) is allowed


def test_action_wildcards_are_case_insensitive():
    assert evaluate([allow("DynamoDB:get*", "*")], "dynamodb:GetItem", "*")
    assert not evaluate([allow("dynamodb:Get?", "*")], "dynamodb:GetItem", "*")
