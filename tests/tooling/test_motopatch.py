"""The one moto patch (``embedrank_tools.motopatch``): a cancelled transaction restores exactly the items it touched,
a transaction costs the same in a big table as in a small one, and a moto upgrade that changes the patched method
fails here, loudly."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws


def test_a_cancelled_transaction_restores_exactly_the_touched_items() -> None:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "5"}})
        db.put_item(TableName="t", Item={"pk": {"S": "record"}, "v": {"S": "old"}})
        add = {
            "Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "counter"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
        new = {"Put": {"TableName": "t", "Item": {"pk": {"S": "fresh"}}}}
        duplicate = {
            "Put": {
                "TableName": "t",
                "Item": {"pk": {"S": "record"}, "v": {"S": "new"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        with pytest.raises(ClientError) as caught:
            db.transact_write_items(TransactItems=[add, new, duplicate])
        assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
        items = {i["pk"]["S"]: i for i in db.scan(TableName="t")["Items"]}
        assert set(items) == {"counter", "record"}  # the new item is gone again
        assert items["counter"]["n"] == {"N": "5"} and items["record"]["v"] == {"S": "old"}
        db.transact_write_items(TransactItems=[add, new])
        items = {i["pk"]["S"]: i for i in db.scan(TableName="t")["Items"]}
        assert set(items) == {"counter", "record", "fresh"} and items["counter"]["n"] == {"N": "6"}


def test_moto_still_has_the_method_the_patch_was_written_for() -> None:
    from embedrank_tools import motopatch

    # when moto is upgraded and its transact_write_items changes, this fails and names the file to re-read
    motopatch.check()


def test_a_transaction_costs_the_same_in_a_big_table() -> None:
    with mock_aws():
        # given one table of 10 items and one of 3,000
        db = boto3.client("dynamodb", region_name="us-east-1")
        for name, size in (("small", 10), ("big", 3000)):
            db.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            for i in range(size):
                db.put_item(TableName=name, Item={"pk": {"S": f"item-{i}"}, "payload": {"S": "x" * 200}})

        def seconds(table: str) -> float:
            add = {"TableName": table, "Key": {"pk": {"S": "item-1"}}, "UpdateExpression": "ADD n :one"}
            add["ExpressionAttributeValues"] = {":one": {"N": "1"}}
            started = time.perf_counter()
            for _ in range(20):
                db.transact_write_items(TransactItems=[{"Update": add}])
            return time.perf_counter() - started

        seconds("small")  # warm-up
        # when the same transaction runs on each, then the big table is not slower for its size (unpatched moto
        # deep-copies the whole table first: ~300x the items, far more than 3x the time)
        assert seconds("big") < 3 * seconds("small") + 0.05
