"""DynamoDB multi-Region strong consistency (MRSC): creation rules, DescribeTable, witness,
synchronous replication, conditional writes, ReplicatedWriteConflictException, dissolving."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator, wait_for

E1, E2, W2 = "us-east-1", "us-east-2", "us-west-2"
TABLE = "ledger"


def create_table(ddb, name: str = TABLE, lsi: bool = False) -> None:
    kwargs = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if lsi:
        kwargs["AttributeDefinitions"].append({"AttributeName": "n", "AttributeType": "N"})
        kwargs["LocalSecondaryIndexes"] = [
            {
                "IndexName": "by_n",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    ddb.create_table(**kwargs)


def key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": "0"}}


def creates(*regions: str) -> list[dict]:
    return [{"Create": {"RegionName": r}} for r in regions]


def strong(ddb, replicas: list[str], witness: str | None = None) -> dict:
    kwargs = {"TableName": TABLE, "ReplicaUpdates": creates(*replicas), "MultiRegionConsistency": "STRONG"}
    if witness:
        kwargs["GlobalTableWitnessUpdates"] = [{"Create": {"RegionName": witness}}]
    return ddb.update_table(**kwargs)["TableDescription"]


def describe(ddb) -> dict:
    return ddb.describe_table(TableName=TABLE)["Table"]


def active(ddb) -> bool:
    table = describe(ddb)
    statuses = [r["ReplicaStatus"] for r in table.get("Replicas", [])]
    statuses += [w["WitnessStatus"] for w in table.get("GlobalTableWitnesses", [])]
    return table["TableStatus"] == "ACTIVE" and all(s == "ACTIVE" for s in statuses)


def refused(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture
def clients(emu: Emulator):
    return {r: emu.client("dynamodb", r) for r in (E1, E2, W2, "eu-west-1")}


@pytest.fixture
def three_replicas(clients):
    """ledger in us-east-1, us-east-2 and us-west-2, MRSC, ACTIVE."""
    create_table(clients[E1])
    strong(clients[E1], [E2, W2])
    wait_for(lambda: active(clients[E1]))
    return clients


@pytest.fixture
def with_witness(clients):
    """ledger in us-east-1 and us-east-2 with a witness in us-west-2, MRSC, ACTIVE."""
    create_table(clients[E1])
    strong(clients[E1], [E2], witness=W2)
    wait_for(lambda: active(clients[E1]))
    return clients


# -- creation ------------------------------------------------------------------------


def test_three_replicas_in_one_update_table_describe_strong(emu, clients):
    emu.post("timing", {"replica_creating_ms": 600})
    create_table(clients[E1])
    described = strong(clients[E1], [E2, W2])
    assert described["TableStatus"] == "UPDATING"
    assert described["MultiRegionConsistency"] == "STRONG"
    assert described["Replicas"] == [
        {"RegionName": E2, "ReplicaStatus": "CREATING"},
        {"RegionName": W2, "ReplicaStatus": "CREATING"},
    ]
    wait_for(lambda: active(clients[E1]))
    for region in (E1, E2, W2):
        table = describe(clients[region])
        assert table["MultiRegionConsistency"] == "STRONG"
        assert table["GlobalTableVersion"] == "2019.11.21"
        assert sorted(r["RegionName"] for r in table["Replicas"]) == sorted({E1, E2, W2} - {region})
        assert "GlobalTableWitnesses" not in table


def test_two_replicas_and_a_witness_which_holds_no_table(emu, clients):
    emu.post("timing", {"replica_creating_ms": 600})
    create_table(clients[E1])
    described = strong(clients[E1], [E2], witness=W2)
    assert described["GlobalTableWitnesses"] == [{"RegionName": W2, "WitnessStatus": "CREATING"}]
    wait_for(lambda: active(clients[E1]))
    for region in (E1, E2):
        table = describe(clients[region])
        assert table["GlobalTableWitnesses"] == [{"RegionName": W2, "WitnessStatus": "ACTIVE"}]
        assert table["Replicas"] == [{"RegionName": ({E1, E2} - {region}).pop(), "ReplicaStatus": "ACTIVE"}]
    # The witness serves no reads or writes: there is no table in its Region.
    assert refused(clients[W2].describe_table, TableName=TABLE)[0] == "ResourceNotFoundException"
    assert refused(clients[W2].get_item, TableName=TABLE, Key=key("a"))[0] == "ResourceNotFoundException"


def test_mrec_tables_do_not_show_the_strong_fields(clients):
    create_table(clients[E1])
    clients[E1].update_table(TableName=TABLE, ReplicaUpdates=creates(E2))
    table = describe(clients[E1])
    assert "MultiRegionConsistency" not in table and "GlobalTableWitnesses" not in table


@pytest.mark.parametrize(
    "replicas, witness, needle",
    [
        ([E2], None, "exactly three Regions"),
        ([E2, W2, "us-west-1"], None, "exactly three Regions"),
        ([E2, W2], "eu-west-1", "exactly three Regions"),
        ([E2, "eu-west-1"], None, "one Region set"),
        ([E2], "eu-west-1", "one Region set"),
        ([E2, "ap-southeast-1"], None, "one Region set"),
        ([E2], E2, "different from the replica Regions"),
        ([E2, E2], None, "Duplicate"),
    ],
)
def test_invalid_sets_are_validation_errors(clients, replicas, witness, needle):
    create_table(clients[E1])
    code, message = refused(strong, clients[E1], replicas, witness)
    assert code == "ValidationException" and needle in message, message
    assert "Replicas" not in describe(clients[E1]), "nothing was created"


def test_strong_needs_creates_and_a_witness_needs_strong(clients):
    create_table(clients[E1])
    code, message = refused(clients[E1].update_table, TableName=TABLE, MultiRegionConsistency="STRONG")
    assert code == "ValidationException" and "Create actions in ReplicaUpdates" in message
    code, message = refused(
        clients[E1].update_table,
        TableName=TABLE,
        ReplicaUpdates=creates(E2),
        GlobalTableWitnessUpdates=[{"Create": {"RegionName": W2}}],
    )
    assert code == "ValidationException" and "multi-Region strong consistency" in message
    code, message = refused(
        clients[E1].update_table, TableName=TABLE, ReplicaUpdates=creates(E2), MultiRegionConsistency="SOMETIMES"
    )
    assert code == "ValidationException" and "[EVENTUAL, STRONG]" in message
    code, message = refused(
        clients[E1].update_table,
        TableName=TABLE,
        ReplicaUpdates=creates(E2),
        MultiRegionConsistency="STRONG",
        GlobalTableWitnessUpdates=[{"Create": {"RegionName": W2}}, {"Create": {"RegionName": "us-west-1"}}],
    )
    assert code == "ValidationException" and "only one witness" in message


def test_what_mrsc_tables_cannot_have(clients):
    # Items: the table must be empty.
    create_table(clients[E1])
    clients[E1].put_item(TableName=TABLE, Item=key("a"))
    code, message = refused(strong, clients[E1], [E2, W2])
    assert code == "ValidationException" and "not empty" in message
    # Time to Live.
    clients[E1].delete_item(TableName=TABLE, Key=key("a"))
    clients[E1].update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    code, message = refused(strong, clients[E1], [E2, W2])
    assert code == "ValidationException" and "Time to Live" in message
    # Local secondary indexes.
    clients[E1].delete_table(TableName=TABLE)
    create_table(clients[E1], lsi=True)
    code, message = refused(strong, clients[E1], [E2, W2])
    assert code == "ValidationException" and "local secondary indexes" in message


def test_consistency_cannot_change_and_replicas_cannot_be_added(clients, three_replicas):
    # An MREC table cannot become MRSC.
    other = "mrec"
    create_table(clients[E1], name=other)
    clients[E1].update_table(TableName=other, ReplicaUpdates=creates(E2))
    wait_for(lambda: clients[E1].describe_table(TableName=other)["Table"]["TableStatus"] == "ACTIVE")
    code, message = refused(
        clients[E1].update_table, TableName=other, ReplicaUpdates=creates(W2), MultiRegionConsistency="STRONG"
    )
    assert code == "ValidationException" and "cannot be changed" in message
    # An MRSC table takes no new replica or witness.
    code, message = refused(clients[E1].update_table, TableName=TABLE, ReplicaUpdates=creates("us-west-1"))
    assert code == "ValidationException" and "cannot be added" in message
    code, message = refused(
        clients[E1].update_table, TableName=TABLE, GlobalTableWitnessUpdates=[{"Create": {"RegionName": "us-west-1"}}]
    )
    assert code == "ValidationException" and "cannot be added" in message
    # Nor Time to Live afterwards.
    code, message = refused(
        clients[E2].update_time_to_live,
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    )
    assert code == "ValidationException" and "Time to Live" in message


# -- data plane ----------------------------------------------------------------------


def test_a_write_is_read_at_once_in_every_replica(emu, three_replicas):
    emu.post("replication", {"delay_ms": 5000})  # MREC would need 5 s; MRSC does not wait for it
    c = three_replicas
    c[E1].put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "1"}})
    for region in (E2, W2):
        got = c[region].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)["Item"]
        assert got["v"] == {"S": "1"}, region
    c[W2].update_item(
        TableName=TABLE, Key=key("a"), UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "2"}}
    )
    assert c[E1].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)["Item"]["v"] == {"S": "2"}
    c[E2].delete_item(TableName=TABLE, Key=key("a"))
    assert "Item" not in c[W2].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)


def test_conditional_writes_evaluate_against_the_latest_write_anywhere(with_witness):
    c = with_witness
    c[E1].put_item(TableName=TABLE, Item=key("lock"), ConditionExpression="attribute_not_exists(pk)")
    code, _ = refused(
        c[E2].put_item, TableName=TABLE, Item=key("lock"), ConditionExpression="attribute_not_exists(pk)"
    )
    assert code == "ConditionalCheckFailedException"


def test_concurrent_writes_to_an_item_from_two_regions_conflict(emu, three_replicas):
    emu.post("timing", {"mrsc_conflict_window_ms": 400})
    c = three_replicas
    c[E1].put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "east"}})
    code, message = refused(c[E2].put_item, TableName=TABLE, Item={**key("a"), "v": {"S": "ohio"}})
    assert code == "ReplicatedWriteConflictException" and "another Region" in message
    # The same Region may write again, another item is free, and after the window the write succeeds.
    c[E1].put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "east2"}})
    c[E2].put_item(TableName=TABLE, Item={**key("b"), "v": {"S": "ohio"}})
    wait_for(lambda: _put_ok(c[E2], {**key("a"), "v": {"S": "ohio"}}), timeout=3)
    assert c[W2].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)["Item"]["v"] == {"S": "ohio"}


def _put_ok(ddb, item: dict) -> bool:
    try:
        ddb.put_item(TableName=TABLE, Item=item)
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ReplicatedWriteConflictException"
        return False


def test_racing_writers_each_either_win_or_conflict(emu, three_replicas):
    emu.post("timing", {"mrsc_conflict_window_ms": 200})
    c = three_replicas
    outcomes: list[str] = []

    def write(region: str) -> None:
        try:
            c[region].put_item(TableName=TABLE, Item={**key("race"), "v": {"S": region}})
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=write, args=(r,)) for r in (E1, E2, W2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") >= 1 and set(outcomes) <= {"ok", "ReplicatedWriteConflictException"}, outcomes
    values = {c[r].get_item(TableName=TABLE, Key=key("race"), ConsistentRead=True)["Item"]["v"]["S"] for r in (E1, E2, W2)}
    assert len(values) == 1, "every replica holds the same, acknowledged, write"


def test_transactions_are_refused(three_replicas):
    c = three_replicas
    code, message = refused(
        c[E1].transact_write_items, TransactItems=[{"Put": {"TableName": TABLE, "Item": key("t")}}]
    )
    assert code == "ValidationException" and "transactions" in message
    code, _ = refused(c[E2].transact_get_items, TransactItems=[{"Get": {"TableName": TABLE, "Key": key("t")}}])
    assert code == "ValidationException"


def test_a_replica_in_an_outage_catches_up_when_it_is_back(emu, three_replicas):
    c = three_replicas
    emu.post("outage", {"region": W2, "down": True})
    c[E1].put_item(TableName=TABLE, Item={**key("a"), "v": {"S": "1"}})
    assert c[E2].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)["Item"]["v"] == {"S": "1"}
    emu.post("outage", {"region": W2, "down": False})
    wait_for(lambda: "Item" in c[W2].get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True), timeout=3)


# -- dissolving the set ----------------------------------------------------------------


def test_a_witness_goes_only_with_a_replica_and_leaves_a_single_region_table(emu, with_witness):
    c = with_witness
    code, message = refused(
        c[E1].update_table, TableName=TABLE, GlobalTableWitnessUpdates=[{"Delete": {"RegionName": W2}}]
    )
    assert code == "ValidationException" and "together in one UpdateTable" in message
    code, message = refused(c[E1].update_table, TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": E2}}])
    assert code == "ValidationException" and "witness in us-west-2" in message
    described = c[E1].update_table(
        TableName=TABLE,
        ReplicaUpdates=[{"Delete": {"RegionName": E2}}],
        GlobalTableWitnessUpdates=[{"Delete": {"RegionName": W2}}],
    )["TableDescription"]
    assert described["Replicas"] == [{"RegionName": E2, "ReplicaStatus": "DELETING"}]
    assert described["GlobalTableWitnesses"] == [{"RegionName": W2, "WitnessStatus": "DELETING"}]
    wait_for(lambda: "Replicas" not in describe(c[E1]), timeout=3)
    table = describe(c[E1])
    assert "MultiRegionConsistency" not in table and "GlobalTableWitnesses" not in table
    assert refused(c[E2].describe_table, TableName=TABLE)[0] == "ResourceNotFoundException"


def test_three_replicas_dissolve_by_deleting_both_others_at_once(three_replicas):
    c = three_replicas
    code, message = refused(c[E1].update_table, TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": E2}}])
    assert code == "ValidationException" and "us-east-2 and us-west-2" in message
    c[E1].update_table(
        TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": E2}}, {"Delete": {"RegionName": W2}}]
    )
    wait_for(lambda: "Replicas" not in describe(c[E1]), timeout=3)
    for region in (E2, W2):
        assert refused(c[region].describe_table, TableName=TABLE)[0] == "ResourceNotFoundException"
