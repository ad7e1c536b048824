"""The embedded local AWS's transaction rollback: only the touched items are snapshotted, and restored exactly."""

from __future__ import annotations

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
