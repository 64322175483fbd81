"""DynamoDB global tables (2019.11.21): replicas, replication, last writer wins, errors."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from conftest import REPLICATION_DELAY_MS, Emulator, wait_for

A, B, C = "us-east-1", "eu-west-1", "ap-southeast-2"
TABLE = "orders"
DELAY_S = REPLICATION_DELAY_MS / 1000


def create_table(ddb, name: str = TABLE, with_indexes: bool = False) -> None:
    kwargs = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if with_indexes:
        kwargs["AttributeDefinitions"] += [
            {"AttributeName": "gsi_pk", "AttributeType": "S"},
            {"AttributeName": "lsi_sk", "AttributeType": "N"},
        ]
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by_gsi",
                "KeySchema": [{"AttributeName": "gsi_pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
        kwargs["LocalSecondaryIndexes"] = [
            {
                "IndexName": "by_lsi",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "lsi_sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    ddb.create_table(**kwargs)


def key(pk: str, sk: str = "0") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(pk: str, value: str, sk: str = "0") -> dict:
    return {**key(pk, sk), "v": {"S": value}}


def get(ddb, pk: str, sk: str = "0") -> dict | None:
    return ddb.get_item(TableName=TABLE, Key=key(pk, sk), ConsistentRead=True).get("Item")


def add_replica(ddb, region: str) -> dict:
    return ddb.update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": region}}])["TableDescription"]


def replicas(ddb) -> dict[str, str]:
    table = ddb.describe_table(TableName=TABLE)["Table"]
    return {r["RegionName"]: r["ReplicaStatus"] for r in table.get("Replicas", [])}


def status(ddb) -> str:
    return ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"]


def wait_active(ddb, region: str) -> None:
    wait_for(lambda: replicas(ddb).get(region) == "ACTIVE" and status(ddb) == "ACTIVE")


@pytest.fixture
def two_regions(emu: Emulator):
    """orders in us-east-1 with an ACTIVE replica in eu-west-1."""
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    create_table(a)
    add_replica(a, B)
    wait_active(a, B)
    return a, b


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# -- replica lifecycle -----------------------------------------------------------


def test_replica_create_is_creating_then_active_in_each_region(emu):
    emu.post("timing", {"replica_creating_ms": 1000})  # room for the checks below on a slow machine
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    create_table(a)
    described = add_replica(a, B)
    assert described["TableStatus"] == "UPDATING"
    assert described["GlobalTableVersion"] == "2019.11.21"
    assert described["Replicas"] == [{"RegionName": B, "ReplicaStatus": "CREATING"}]

    # While the replica is created: source UPDATING, replica CREATING.
    assert status(a) == "UPDATING" and replicas(a) == {B: "CREATING"}
    assert status(b) == "CREATING" and replicas(b) == {A: "ACTIVE"}

    wait_for(lambda: status(a) == "ACTIVE", timeout=4)
    for client, other in ((a, B), (b, A)):
        table = client.describe_table(TableName=TABLE)["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["GlobalTableVersion"] == "2019.11.21"
        # AWS lists the other Regions, not the Region being asked.
        assert table["Replicas"] == [{"RegionName": other, "ReplicaStatus": "ACTIVE"}]
    # Replication is built on streams: AWS enables NEW_AND_OLD_IMAGES.
    assert a.describe_table(TableName=TABLE)["Table"]["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_replica_copies_schema_indexes_and_items(emu):
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    create_table(a, with_indexes=True)
    for i in range(3):
        a.put_item(TableName=TABLE, Item={**item(f"p{i}", f"v{i}"), "gsi_pk": {"S": "g"}, "lsi_sk": {"N": str(i)}})
    add_replica(a, B)
    wait_active(a, B)

    source = a.describe_table(TableName=TABLE)["Table"]
    replica = b.describe_table(TableName=TABLE)["Table"]
    for field in ("KeySchema", "AttributeDefinitions", "BillingModeSummary", "StreamSpecification"):
        assert replica[field] == source[field], field
    assert [g["IndexName"] for g in replica["GlobalSecondaryIndexes"]] == ["by_gsi"]
    assert [i["IndexName"] for i in replica["LocalSecondaryIndexes"]] == ["by_lsi"]
    assert replica["TableArn"] == source["TableArn"].replace(A, B)
    # A new replica starts with a full copy of the table.
    assert get(b, "p1")["v"] == {"S": "v1"}
    assert b.query(TableName=TABLE, IndexName="by_gsi", KeyConditionExpression="gsi_pk = :g",
                   ExpressionAttributeValues={":g": {"S": "g"}})["Count"] == 3


def test_creating_replica_answers_only_describe(emu):
    emu.post("timing", {"replica_creating_ms": 1000})
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    create_table(a)
    add_replica(a, B)
    with pytest.raises(ClientError) as excinfo:
        b.get_item(TableName=TABLE, Key=key("x"))
    assert error_code(excinfo) == "ResourceNotFoundException"
    wait_active(a, B)
    b.get_item(TableName=TABLE, Key=key("x"))


def test_three_region_group(emu):
    a, b, c = (emu.client("dynamodb", r) for r in (A, B, C))
    create_table(a)
    add_replica(a, B)
    wait_active(a, B)
    b.update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": C}}])  # from a replica: symmetric
    wait_active(a, C)
    assert replicas(a) == {B: "ACTIVE", C: "ACTIVE"}
    assert replicas(c) == {A: "ACTIVE", B: "ACTIVE"}
    c.put_item(TableName=TABLE, Item=item("k", "from-c"))
    wait_for(lambda: get(a, "k") and get(b, "k"))


# -- replication --------------------------------------------------------------------


def test_write_is_visible_in_other_region_after_delay_not_before(emu, two_regions):
    a, b = two_regions
    # Timed from before the call: the replication timer starts inside it, and a slow response
    # on a loaded machine must not shorten the measured window.
    started = time.monotonic()
    a.put_item(TableName=TABLE, Item=item("k1", "hello"))
    assert get(b, "k1") is None  # still in the replication window
    wait_for(lambda: get(b, "k1"), timeout=3)
    assert time.monotonic() - started >= DELAY_S
    assert get(b, "k1")["v"] == {"S": "hello"}

    emu.post("replication", {"delay_ms": 2000})
    a.put_item(TableName=TABLE, Item=item("k2", "later"))
    time.sleep(0.4)
    assert get(b, "k2") is None
    wait_for(lambda: get(b, "k2"), timeout=3)


def test_per_pair_replication_delay(emu, two_regions):
    a, b = two_regions
    emu.post("replication", {"delay_ms": 1500, "source": A, "destination": B})
    b.put_item(TableName=TABLE, Item=item("fast", "x"))
    a.put_item(TableName=TABLE, Item=item("slow", "y"))
    time.sleep(DELAY_S + 0.25)
    assert get(a, "fast") is not None  # B -> A still uses the global delay
    assert get(b, "slow") is None  # A -> B waits 1.5 s
    wait_for(lambda: get(b, "slow"), timeout=4)


def test_all_five_write_operations_replicate(two_regions):
    a, b = two_regions
    a.put_item(TableName=TABLE, Item=item("put", "1"))
    a.put_item(TableName=TABLE, Item=item("to-update", "old"))
    a.put_item(TableName=TABLE, Item=item("to-delete", "x"))
    a.put_item(TableName=TABLE, Item=item("batch-del", "x"))
    a.put_item(TableName=TABLE, Item=item("tx-del", "x"))
    wait_for(lambda: get(b, "tx-del"))

    a.update_item(TableName=TABLE, Key=key("to-update"), UpdateExpression="SET v = :v, n = :n",
                  ExpressionAttributeValues={":v": {"S": "new"}, ":n": {"N": "7"}})
    a.delete_item(TableName=TABLE, Key=key("to-delete"))
    a.batch_write_item(RequestItems={TABLE: [
        {"PutRequest": {"Item": item("batch-put", "b")}},
        {"DeleteRequest": {"Key": key("batch-del")}},
    ]})
    a.transact_write_items(TransactItems=[
        {"Put": {"TableName": TABLE, "Item": item("tx-put", "t")}},
        {"Update": {"TableName": TABLE, "Key": key("put"), "UpdateExpression": "SET w = :w",
                    "ExpressionAttributeValues": {":w": {"S": "tx"}}}},
        {"Delete": {"TableName": TABLE, "Key": key("tx-del")}},
    ])
    wait_for(lambda: get(b, "tx-put") and get(b, "tx-del") is None)
    assert get(b, "to-update")["v"] == {"S": "new"} and get(b, "to-update")["n"] == {"N": "7"}
    assert get(b, "to-delete") is None
    assert get(b, "batch-put")["v"] == {"S": "b"}
    assert get(b, "batch-del") is None
    assert get(b, "put") == {**item("put", "1"), "w": {"S": "tx"}}


def test_failed_conditional_write_does_not_replicate(two_regions):
    a, b = two_regions
    a.put_item(TableName=TABLE, Item=item("c", "v1"))
    wait_for(lambda: get(b, "c"))
    with pytest.raises(ClientError):
        a.put_item(TableName=TABLE, Item=item("c", "v2"), ConditionExpression="attribute_not_exists(pk)")
    b.put_item(TableName=TABLE, Item=item("c", "v3"))
    time.sleep(DELAY_S + 0.25)
    assert get(a, "c")["v"] == get(b, "c")["v"] == {"S": "v3"}


def test_last_writer_wins_on_concurrent_conflicting_writes(two_regions):
    a, b = two_regions
    a.put_item(TableName=TABLE, Item=item("conflict", "from-a"))
    b.put_item(TableName=TABLE, Item=item("conflict", "from-b"))  # later write, inside the window
    time.sleep(DELAY_S + 0.3)
    # Both Regions converge on the later write; the older one never overwrote it.
    assert get(a, "conflict")["v"] == {"S": "from-b"}
    assert get(b, "conflict")["v"] == {"S": "from-b"}

    b.delete_item(TableName=TABLE, Key=key("conflict"))
    a.put_item(TableName=TABLE, Item=item("conflict", "after-delete"))  # newer than the delete
    time.sleep(DELAY_S + 0.3)
    assert get(a, "conflict")["v"] == get(b, "conflict")["v"] == {"S": "after-delete"}


def test_delete_replica_stops_replication(emu, two_regions):
    emu.post("timing", {"replica_deleting_ms": 1000})
    a, b = two_regions
    described = a.update_table(TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": B}}])["TableDescription"]
    assert described["Replicas"] == [{"RegionName": B, "ReplicaStatus": "DELETING"}]
    assert status(b) == "DELETING" and status(a) == "UPDATING"
    a.put_item(TableName=TABLE, Item=item("after", "x"))
    wait_for(lambda: B not in [r["RegionName"] for r in a.describe_table(TableName=TABLE)["Table"].get("Replicas", [])])
    table = a.describe_table(TableName=TABLE)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert "Replicas" not in table and "GlobalTableVersion" not in table
    with pytest.raises(ClientError) as excinfo:
        b.describe_table(TableName=TABLE)
    assert error_code(excinfo) == "ResourceNotFoundException"
    # Re-creating a plain table there gets no replicated writes.
    create_table(b)
    a.put_item(TableName=TABLE, Item=item("later", "y"))
    time.sleep(DELAY_S + 0.25)
    assert get(b, "later") is None and get(b, "after") is None
    assert emu.get("state")["pending_replications"] == 0


def test_delete_table_on_member_removes_only_that_member(two_regions):
    a, b = two_regions
    assert b.delete_table(TableName=TABLE)["TableDescription"]["TableStatus"] == "DELETING"
    table = a.describe_table(TableName=TABLE)["Table"]
    assert table["TableStatus"] == "ACTIVE" and "Replicas" not in table
    a.put_item(TableName=TABLE, Item=item("still", "works"))


# -- errors -----------------------------------------------------------------------------


def test_two_replica_updates_in_one_call_is_validation_error(emu):
    a = emu.client("dynamodb", A)
    create_table(a)
    with pytest.raises(ClientError) as excinfo:
        a.update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": B}}, {"Create": {"RegionName": C}}])
    assert error_code(excinfo) == "ValidationException"
    assert "more than one create or delete replica actions" in str(excinfo.value)
    with pytest.raises(ClientError) as excinfo:
        a.update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": B}, "Delete": {"RegionName": C}}])
    assert error_code(excinfo) == "ValidationException"
    assert "replicas" not in str(a.describe_table(TableName=TABLE)["Table"]).lower()


def test_replica_update_while_creating_is_resource_in_use(emu):
    emu.post("timing", {"replica_creating_ms": 1500})
    a = emu.client("dynamodb", A)
    create_table(a)
    add_replica(a, B)
    for update in ({"Create": {"RegionName": C}}, {"Delete": {"RegionName": B}}):
        with pytest.raises(ClientError) as excinfo:
            a.update_table(TableName=TABLE, ReplicaUpdates=[update])
        assert error_code(excinfo) == "ResourceInUseException"
        assert f"Table is being updated: {TABLE}" in str(excinfo.value)
    with pytest.raises(ClientError) as excinfo:
        emu.client("dynamodb", B).delete_table(TableName=TABLE)
    assert error_code(excinfo) == "ResourceInUseException"


def test_duplicate_create_and_create_over_plain_table(emu, two_regions):
    a, _ = two_regions
    with pytest.raises(ClientError) as excinfo:
        add_replica(a, B)
    assert error_code(excinfo) == "ValidationException"
    assert "already existed as tables" in str(excinfo.value)

    create_table(emu.client("dynamodb", C))  # a plain same-name table in C
    with pytest.raises(ClientError) as excinfo:
        add_replica(a, C)
    assert error_code(excinfo) == "ValidationException"
    assert "already existed as tables" in str(excinfo.value)


def test_delete_of_non_replica_and_local_region(emu, two_regions):
    a, _ = two_regions
    with pytest.raises(ClientError) as excinfo:
        a.update_table(TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": C}}])
    assert error_code(excinfo) == "ValidationException"
    assert "not part of the global table" in str(excinfo.value)
    for kind in ("Create", "Delete"):
        with pytest.raises(ClientError) as excinfo:
            a.update_table(TableName=TABLE, ReplicaUpdates=[{kind: {"RegionName": A}}])
        assert error_code(excinfo) == "ValidationException"
        assert "local region" in str(excinfo.value)


def test_replica_update_on_missing_table_and_bad_region(emu):
    a = emu.client("dynamodb", A)
    with pytest.raises(ClientError) as excinfo:
        add_replica(a, B)
    assert error_code(excinfo) == "ResourceNotFoundException"
    create_table(a)
    with pytest.raises(ClientError) as excinfo:
        add_replica(a, "us-fake-1")
    assert error_code(excinfo) == "ValidationException"


# -- outages ------------------------------------------------------------------------------


def test_replication_is_held_while_a_region_is_down(emu, two_regions):
    a, b = two_regions
    emu.post("replication", {"delay_ms": 500})
    a.put_item(TableName=TABLE, Item=item("in-window", "v"))
    emu.post("outage", {"region": A, "down": True})  # source fails inside the window
    wait_for(lambda: emu.get("state")["held_replications"] == 1, timeout=3)
    assert get(b, "in-window") is None
    emu.post("replication", {"delay_ms": REPLICATION_DELAY_MS})

    # Meanwhile the surviving Region takes a newer write of another key...
    b.put_item(TableName=TABLE, Item=item("during", "b"))
    time.sleep(DELAY_S + 0.1)
    emu.post("outage", {"region": A, "down": False})
    # ...and everything converges once A is back.
    wait_for(lambda: get(b, "in-window") and get(a, "during"))
    assert emu.get("state")["pending_replications"] == 0


def test_outage_can_spare_services(emu, two_regions):
    a, b = two_regions
    emu.post("outage", {"region": A, "down": True, "except_services": ["dynamodb"]})
    with pytest.raises(ClientError) as excinfo:
        emu.client("rds", A).describe_db_clusters()
    assert excinfo.value.response["Error"]["Code"] == "ServiceUnavailable"
    a.put_item(TableName=TABLE, Item=item("spared", "v"))  # DynamoDB in A still answers and replicates
    wait_for(lambda: get(b, "spared"), timeout=3)


def test_held_write_loses_to_newer_write_made_during_outage(emu, two_regions):
    a, b = two_regions
    a.put_item(TableName=TABLE, Item=item("k", "old-from-a"))
    emu.post("outage", {"region": A, "down": True})
    b.put_item(TableName=TABLE, Item=item("k", "new-from-b"))
    time.sleep(DELAY_S + 0.1)
    emu.post("outage", {"region": A, "down": False})
    wait_for(lambda: emu.get("state")["pending_replications"] == 0)
    assert get(a, "k")["v"] == get(b, "k")["v"] == {"S": "new-from-b"}


def test_concurrent_writers_converge(emu, two_regions):
    """Threaded server + scheduler: parallel conflicting writes end identical in both Regions."""
    from concurrent.futures import ThreadPoolExecutor

    clients = {A: emu.client("dynamodb", A), B: emu.client("dynamodb", B)}
    emu.post("replication", {"delay_ms": 20})

    def writer(n: int) -> None:
        region = A if n % 2 else B
        for i in range(15):
            clients[region].put_item(TableName=TABLE, Item=item(f"hot{i % 5}", f"{region}-{n}-{i}"))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    wait_for(lambda: emu.get("state")["pending_replications"] == 0)
    for i in range(5):
        assert get(clients[A], f"hot{i}") == get(clients[B], f"hot{i}")
