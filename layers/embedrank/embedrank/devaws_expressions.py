"""DynamoDB's data model and expression language for ``devaws``: attribute values, numbers, and the condition /
filter / key condition / update / projection expressions, parsed (``devaws`` caches a request's parses by text) and
evaluated against items.

Values stay in DynamoDB's JSON wire form (``{"S": "x"}``, ``{"N": "1.5"}``, ...) and are never mutated once
stored: an update builds new containers along the paths it touches (copy-on-write), so an item read under the
server's lock can be serialized after it. Numbers are ``decimal.Decimal`` underneath, with DynamoDB's rules (38
significant digits, magnitude 1E-130 to 1E+126, exact arithmetic) and its canonical text ("1.50" -> "1.5").

Covered: every comparator, BETWEEN, IN, AND / OR / NOT (NOT binds tighter than AND, AND than OR), parentheses, the
functions attribute_exists, attribute_not_exists, attribute_type, begins_with, contains and size; SET (``a = b + :v``,
``a = b - :v``, if_not_exists, list_append), REMOVE, ADD (numbers and sets), DELETE (sets); nested paths (``a.b``,
``a[0]``); reserved words; unused or undefined ``#names`` / ``:values``; overlapping update paths.
Not covered: expression length limits, the legacy parameters (Expected, AttributeUpdates, KeyConditions, ...).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any, cast

AV = dict[str, Any]  # one attribute value, e.g. {"S": "x"}
Item = dict[str, AV]
Path = tuple[str | int, ...]  # resolved: attribute names and list indexes
SETS = ("SS", "NS", "BS")
SCALARS = ("S", "N", "B")
TYPES = ("S", "N", "B", "BOOL", "NULL", "L", "M", *SETS)
_LONG_TYPE = {"S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL", "L": "LIST", "M": "MAP"}
_LONG_TYPE |= {"SS": "STRING SET", "NS": "NUMBER SET", "BS": "BINARY SET"}
_EXACT = Context(prec=400)  # wide enough that adding any two DynamoDB numbers is exact
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

# DynamoDB's reserved words (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ReservedWords.html):
# one of them as a bare attribute name in an expression is a ValidationException.
_RESERVED_WORDS = """
    ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE ARE ARRAY AS ASC
    ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH AUTHORIZATION AUTHORIZE AUTO AVG BACK
    BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY BIT BLOB BLOCK BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE
    CALL CALLED CALLING CAPACITY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER
    CLUSTERED CLUSTERING CLUSTERS COALESCE COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT COMMIT
    COMPACT COMPILE COMPRESS CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY CONSISTENT CONSTRAINT CONSTRAINTS
    CONSTRUCTOR CONSUMED CONTINUE CONVERT COPY CORRESPONDING COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE
    DATA DATABASE DATE DATETIME DAY DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE DEFINED
    DEFINITION DELETE DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC DIAGNOSTICS DIRECTORIES
    DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP DURATION DYNAMIC EACH ELEMENT ELSE ELSEIF
    EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL EVALUATE EXCEEDED EXCEPT EXCEPTION EXCEPTIONS EXCLUSIVE
    EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH
    FIELDS FILE FILTER FILTERING FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND
    FREE FROM FULL FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER GROUP GROUPING HANDLER
    HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE IMMEDIATE IMPORT IN INCLUDING INCLUSIVE
    INCREMENT INCREMENTAL INDEX INDEXED INDEXES INDICATOR INFINITE INITIALLY INLINE INNER INNTER INOUT INPUT
    INSENSITIVE INSERT INSTEAD INT INTEGER INTERSECT INTERVAL INTO INVALIDATE IS ISOLATION ITEM ITEMS ITERATE JOIN
    KEY KEYS LAG LANGUAGE LARGE LAST LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL LIKE LIMIT LIMITED LINES
    LIST LOAD LOCAL LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG LOGED LONG LOOP LOWER MAP MATCH
    MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN MINUS MINUTE MISSING MOD MODE MODIFIES MODIFY MODULE
    MONTH MULTI MULTISET NAME NAMES NATIONAL NATURAL NCHAR NCLOB NEW NEXT NO NONE NOT NULL NULLIF NUMBER NUMERIC
    OBJECT OF OFFLINE OFFSET OLD ON ONLINE ONLY OPAQUE OPEN OPERATOR OPTION OR ORDER ORDINALITY OTHER OTHERS OUT
    OUTER OUTPUT OVER OVERLAPS OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS PARTIAL PARTITION PARTITIONED
    PARTITIONS PATH PERCENT PERCENTILE PERMISSION PERMISSIONS PIPE PIPELINED PLAN POOL POSITION PRECISION PREPARE
    PRESERVE PRIMARY PRIOR PRIVATE PRIVILEGES PROCEDURE PROCESSED PROJECT PROJECTION PROPERTY PROVISIONING PUBLIC
    PUT QUERY QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ READS REAL REBUILD RECORD RECURSIVE REDUCE REF REFERENCE
    REFERENCES REFERENCING REGEXP REGION REINDEX RELATIVE RELEASE REMAINDER RENAME REPEAT REPLACE REQUEST RESET
    RESIGNAL RESOURCE RESPONSE RESTORE RESTRICT RESULT RETURN RETURNING RETURNS REVERSE REVOKE RIGHT ROLE ROLES
    ROLLBACK ROLLUP ROUTINE ROW ROWS RULE RULES SAMPLE SATISFIES SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH
    SECOND SECTION SEGMENT SEGMENTS SELECT SELF SEMI SENSITIVE SEPARATE SEQUENCE SERIALIZABLE SESSION SET SETS
    SHARD SHARE SHARED SHORT SHOW SIGNAL SIMILAR SIZE SKEWED SMALLINT SNAPSHOT SOME SOURCE SPACE SPACES SPARSE
    SPECIFIC SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR SQLEXCEPTION SQLSTATE SQLWARNING START STATE STATIC STATUS
    STORAGE STORE STORED STREAM STRING STRUCT STYLE SUB SUBMULTISET SUBPARTITION SUBSTRING SUBTYPE SUM SUPER
    SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE TEMP TEMPORARY TERMINATED TEXT THAN THEN THROUGHPUT TIME TIMESTAMP
    TIMEZONE TINYINT TO TOKEN TOTAL TOUCH TRAILING TRANSACTION TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM
    TRUE TRUNCATE TTL TUPLE TYPE UNDER UNDO UNION UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED UNSIGNED UNTIL
    UPDATE UPPER URL USAGE USE USER USERS USING UUID VACUUM VALUE VALUED VALUES VARCHAR VARIABLE VARIANCE VARINT
    VARYING VIEW VIEWS VIRTUAL VOID WAIT WHEN WHENEVER WHERE WHILE WINDOW WITH WITHIN WITHOUT WORK WRAPPED WRITE
    YEAR ZONE
"""
RESERVED = frozenset(_RESERVED_WORDS.split())


class Invalid(Exception):
    """Bad input (a ValidationException): its message is DynamoDB's."""


# -- values -------------------------------------------------------------------------------------------------------


def number_text(value: Decimal) -> str:
    """A number in DynamoDB's canonical text, after checking it fits DynamoDB's precision and range."""
    value = value.normalize(_EXACT)
    if len(value.as_tuple().digits) > 38:
        raise Invalid("Attempting to store more than 38 significant digits in a Number")
    if value and value.adjusted() > 125:
        raise Invalid("Number overflow. Attempting to store a number with magnitude larger than supported range")
    if value and value.adjusted() < -130:
        raise Invalid("Number underflow. Attempting to store a number with magnitude smaller than supported range")
    text = format(value, "f")
    return "0" if text == "-0" else text


def add_numbers(a: str, b: str, subtract: bool = False) -> str:
    """``a + b`` (or ``a - b``) of two canonical numbers, exactly; integers (counters) take a short cut."""
    if a.isdigit() and b.isdigit() and not subtract:
        total = str(int(a) + int(b))
        if len(total) <= 38:
            return total
    x, y = decimal(a), decimal(b)
    return number_text(_EXACT.subtract(x, y) if subtract else _EXACT.add(x, y))


@lru_cache(maxsize=4096)
def canonical_number(text: str) -> str:
    if not isinstance(text, str) or not _NUMBER.fullmatch(text):
        raise Invalid(f"The parameter cannot be converted to a numeric value: {text}")
    return number_text(Decimal(text))


@lru_cache(maxsize=4096)
def decimal(text: str) -> Decimal:
    return Decimal(text)


def _binary(text: Any) -> str:
    try:
        return base64.b64encode(base64.b64decode(text, validate=True)).decode()
    except (binascii.Error, TypeError, ValueError):
        raise Invalid("Invalid Binary value: not valid base64") from None


def _set_members(tag: str, members: Any) -> list[Any]:
    kind = {"SS": "string", "NS": "number", "BS": "binary"}[tag]
    if not isinstance(members, list):
        raise Invalid(f"Invalid {kind} set: not a list")
    if not members:
        raise Invalid(f"One or more parameter values were invalid: An {kind} set  may not be empty")
    if tag == "NS":
        members = [canonical_number(m) for m in members]
    elif tag == "BS":
        members = [_binary(m) for m in members]
    elif not all(isinstance(m, str) for m in members):
        raise Invalid("Invalid string set: members must be strings")
    if len(set(members)) != len(members):
        raise Invalid(f"One or more parameter values were invalid: Input collection {members} contains duplicates.")
    return list(members)


def validate_value(value: Any) -> AV:
    """One attribute value from a request, checked and in canonical form (numbers, binaries)."""
    if not isinstance(value, dict) or len(value) != 1:
        many = isinstance(value, dict) and len(value) > 1
        raise Invalid(
            f"Supplied AttributeValue {'has more than one datatypes set' if many else 'is empty'}, "
            "must contain exactly one of the supported datatypes"
        )
    ((tag, inner),) = value.items()
    if tag == "S" and isinstance(inner, str):
        return value
    if tag == "N":
        text = canonical_number(inner)
        return value if text == inner else {"N": text}
    if tag == "B":
        return {"B": _binary(inner)}
    if tag == "BOOL" and isinstance(inner, bool):
        return value
    if tag == "NULL":
        if inner is not True:
            raise Invalid(
                "One or more parameter values were invalid: Null attribute value types must have the value of true"
            )
        return value
    if tag in SETS:
        return {tag: _set_members(tag, inner)}
    if tag == "L" and isinstance(inner, list):
        return {"L": [validate_value(v) for v in inner]}
    if tag == "M" and isinstance(inner, dict):
        return {"M": validate_item(inner)}
    raise Invalid(f"Supplied AttributeValue has an invalid or unsupported datatype: {tag}")


def validate_item(item: Any) -> Item:
    if not isinstance(item, dict):
        raise Invalid("An item must be a map of attribute names to attribute values")
    for name in item:
        if not isinstance(name, str) or not name:
            raise Invalid("One or more parameter values were invalid: An attribute name must not be empty")
    return {name: validate_value(value) for name, value in item.items()}


def type_of(value: AV) -> str:
    return next(iter(value))


def value_size(value: AV) -> int:
    """DynamoDB's size of a value in bytes (what the 400 KB item and 1 MB page limits count)."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return len(inner.encode())
    if tag == "N":
        return len(inner.replace("-", "").replace(".", "").strip("0")) // 2 + 2
    if tag == "B":
        return len(inner) * 3 // 4
    if tag in ("BOOL", "NULL"):
        return 1
    if tag in SETS:
        return sum(value_size({tag[0]: m}) for m in inner)
    if tag == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in inner.items())


def item_size(item: Item) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def sort_key(value: AV) -> Any:
    """What orders values as DynamoDB does: strings by UTF-8 bytes, numbers numerically, binaries by bytes."""
    ((tag, inner),) = value.items()
    if tag == "N":
        return decimal(inner)
    if tag == "B":
        return base64.b64decode(inner)
    return inner  # str order is code point order, which is UTF-8 byte order


def equal(a: AV | None, b: AV | None) -> bool:
    if a is None or b is None:
        return False
    ((ta, va),) = a.items()
    ((tb, vb),) = b.items()
    if ta != tb:
        return False
    if ta in SETS:
        return set(va) == set(vb)
    if ta == "L":
        return len(va) == len(vb) and all(equal(x, y) for x, y in zip(va, vb, strict=True))
    if ta == "M":
        return va.keys() == vb.keys() and all(equal(v, vb[k]) for k, v in va.items())
    return bool(va == vb)  # N, B: canonical text


def order(a: AV | None, b: AV | None) -> int | None:
    """-1 / 0 / 1 for two values of the same scalar type (S, N, B), else None: such a comparison is false."""
    if a is None or b is None:
        return None
    ta, tb = type_of(a), type_of(b)
    if ta != tb or ta not in SCALARS:
        return None
    x, y = sort_key(a), sort_key(b)
    return int((x > y) - (x < y))


# -- paths --------------------------------------------------------------------------------------------------------


def get_path(item: Item, path: Path) -> AV | None:
    value = item.get(cast(str, path[0]))
    for element in path[1:]:
        if value is None:
            return None
        if isinstance(element, int):
            items = value.get("L")
            value = items[element] if items is not None and element < len(items) else None
        else:
            members = value.get("M")
            value = members.get(element) if members is not None else None
    return value


_BAD_PATH = "The document path provided in the update expression is invalid for update"


def _replaced(container: AV | None, rest: Path, value: AV | None) -> AV:
    """``container`` with ``rest`` set to ``value`` (None: removed), as new containers along the path."""
    head, tail = rest[0], rest[1:]
    if isinstance(head, int):
        if container is None or "L" not in container:
            raise Invalid(_BAD_PATH)
        items = list(container["L"])
        if not tail:
            if value is None:
                if head < len(items):
                    del items[head]
            elif head < len(items):
                items[head] = value
            else:
                items.append(value)
        elif head < len(items):
            items[head] = _replaced(items[head], tail, value)
        elif value is not None:
            raise Invalid(_BAD_PATH)
        return {"L": items}
    if container is None or "M" not in container:
        raise Invalid(_BAD_PATH)
    members = dict(container["M"])
    if not tail:
        if value is None:
            members.pop(head, None)
        else:
            members[head] = value
    elif head in members:
        members[head] = _replaced(members[head], tail, value)
    elif value is not None:
        raise Invalid(_BAD_PATH)
    return {"M": members}


def set_path(item: Item, path: Path, value: AV | None) -> None:
    """Set (or with None, remove) ``path`` in ``item``, a fresh top-level dict owned by the caller."""
    name = str(path[0])
    if len(path) == 1:
        if value is None:
            item.pop(name, None)
        else:
            item[name] = value
    elif name in item:
        item[name] = _replaced(item[name], path[1:], value)
    elif value is not None:
        raise Invalid(_BAD_PATH)


def project(item: Item, paths: list[Path]) -> Item:
    """The parts of ``item`` that ``paths`` name (a ProjectionExpression); list elements are compacted, as DynamoDB
    does."""
    if all(len(p) == 1 for p in paths):
        return {str(p[0]): item[str(p[0])] for p in paths if p[0] in item}
    tree: dict[Any, Any] = {}
    for path in paths:
        value = get_path(item, path)
        if value is None:
            continue
        node = tree
        for element in path[:-1]:
            node = node.setdefault(element, {})
        node[path[-1]] = ("leaf", value)
    return {name: _built(node) for name, node in tree.items()}


def _built(node: Any) -> AV:
    if isinstance(node, tuple):
        leaf: AV = node[1]
        return leaf
    if all(isinstance(k, int) for k in node):
        return {"L": [_built(node[k]) for k in sorted(node)]}
    return {"M": {k: _built(v) for k, v in node.items()}}


def overlapping(paths: list[Path], kind: str) -> None:
    if len({p[0] for p in paths}) == len(paths):
        return  # distinct top-level names: nothing can overlap
    for i, one in enumerate(paths):
        for two in paths[i + 1 :]:
            if one[: len(two)] == two or two[: len(one)] == one:
                raise Invalid(
                    f"Invalid {kind}: Two document paths overlap with each other; must remove or rewrite one of "
                    f"these paths; path one: [{', '.join(map(str, one))}], path two: [{', '.join(map(str, two))}]"
                )


# -- the bound context of one request ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ctx:
    """One request's ``ExpressionAttributeNames`` and (validated) ``ExpressionAttributeValues``."""

    names: Mapping[str, str]
    values: Mapping[str, AV]


# -- operands -----------------------------------------------------------------------------------------------------


class Operand:
    def get(self, item: Item, ctx: Ctx) -> AV | None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PathRef(Operand):
    elements: tuple[str | int, ...]  # names as written: "#n" placeholders or plain names

    def resolve(self, ctx: Ctx) -> Path:
        names = ctx.names
        return tuple([names[e] if isinstance(e, str) and e[0] == "#" else e for e in self.elements])

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        return get_path(item, self.resolve(ctx))


@dataclass(frozen=True, slots=True)
class ValueRef(Operand):
    name: str

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        return ctx.values[self.name]


@dataclass(frozen=True, slots=True)
class Size(Operand):
    path: PathRef

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        value = self.path.get(item, ctx)
        if value is None:
            return None
        ((tag, inner),) = value.items()
        if tag == "S":
            return {"N": str(len(inner))}
        if tag == "B":
            return {"N": str(len(base64.b64decode(inner)))}
        if tag in ("N", "BOOL", "NULL"):
            return None
        return {"N": str(len(inner))}


@dataclass(frozen=True, slots=True)
class IfNotExists(Operand):
    path: PathRef
    default: Operand

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        value = self.path.get(item, ctx)
        return value if value is not None else self.default.get(item, ctx)


_MISSING = "The provided expression refers to an attribute that does not exist in the item"
_WRONG_TYPE = "An operand in the update expression has an incorrect data type"


@dataclass(frozen=True, slots=True)
class ListAppend(Operand):
    first: Operand
    second: Operand

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        a, b = self.first.get(item, ctx), self.second.get(item, ctx)
        if a is None or b is None:
            raise Invalid(_MISSING)
        if "L" not in a or "L" not in b:
            raise Invalid(_WRONG_TYPE)
        return {"L": [*a["L"], *b["L"]]}


@dataclass(frozen=True, slots=True)
class Arithmetic(Operand):
    op: str  # "+" or "-"
    left: Operand
    right: Operand

    def get(self, item: Item, ctx: Ctx) -> AV | None:
        a, b = self.left.get(item, ctx), self.right.get(item, ctx)
        if a is None or b is None:
            raise Invalid(_MISSING)
        if "N" not in a or "N" not in b:
            raise Invalid(_WRONG_TYPE)
        return {"N": add_numbers(a["N"], b["N"], subtract=self.op == "-")}


# -- conditions ---------------------------------------------------------------------------------------------------


class Cond:
    def test(self, item: Item, ctx: Ctx) -> bool:
        raise NotImplementedError


_COMPARE: dict[str, Callable[[AV | None, AV | None], bool]] = {
    "=": equal,
    "<>": lambda a, b: not equal(a, b),
    "<": lambda a, b: (o := order(a, b)) is not None and o < 0,
    "<=": lambda a, b: (o := order(a, b)) is not None and o <= 0,
    ">": lambda a, b: (o := order(a, b)) is not None and o > 0,
    ">=": lambda a, b: (o := order(a, b)) is not None and o >= 0,
}


@dataclass(frozen=True, slots=True)
class Compare(Cond):
    op: str
    left: Operand
    right: Operand

    def test(self, item: Item, ctx: Ctx) -> bool:
        return _COMPARE[self.op](self.left.get(item, ctx), self.right.get(item, ctx))


@dataclass(frozen=True, slots=True)
class Between(Cond):
    subject: Operand
    low: Operand
    high: Operand

    def test(self, item: Item, ctx: Ctx) -> bool:
        value = self.subject.get(item, ctx)
        above, below = order(value, self.low.get(item, ctx)), order(value, self.high.get(item, ctx))
        return above is not None and below is not None and above >= 0 and below <= 0


@dataclass(frozen=True, slots=True)
class In(Cond):
    subject: Operand
    options: tuple[Operand, ...]

    def test(self, item: Item, ctx: Ctx) -> bool:
        value = self.subject.get(item, ctx)
        return any(equal(value, option.get(item, ctx)) for option in self.options)


@dataclass(frozen=True, slots=True)
class And(Cond):
    left: Cond
    right: Cond

    def test(self, item: Item, ctx: Ctx) -> bool:
        return self.left.test(item, ctx) and self.right.test(item, ctx)


@dataclass(frozen=True, slots=True)
class Or(Cond):
    left: Cond
    right: Cond

    def test(self, item: Item, ctx: Ctx) -> bool:
        return self.left.test(item, ctx) or self.right.test(item, ctx)


@dataclass(frozen=True, slots=True)
class Not(Cond):
    inner: Cond

    def test(self, item: Item, ctx: Ctx) -> bool:
        return not self.inner.test(item, ctx)


@dataclass(frozen=True, slots=True)
class Exists(Cond):
    path: PathRef
    wanted: bool  # attribute_exists (True) or attribute_not_exists (False)

    def test(self, item: Item, ctx: Ctx) -> bool:
        return (self.path.get(item, ctx) is not None) is self.wanted


@dataclass(frozen=True, slots=True)
class AttributeType(Cond):
    path: PathRef
    type_name: Operand

    def test(self, item: Item, ctx: Ctx) -> bool:
        value, wanted = self.path.get(item, ctx), self.type_name.get(item, ctx)
        return value is not None and wanted is not None and type_of(value) == wanted.get("S")


@dataclass(frozen=True, slots=True)
class BeginsWith(Cond):
    subject: Operand
    prefix: Operand

    def test(self, item: Item, ctx: Ctx) -> bool:
        value, prefix = self.subject.get(item, ctx), self.prefix.get(item, ctx)
        if value is None or prefix is None or type_of(value) != type_of(prefix):
            return False
        if "S" in value:
            return bool(value["S"].startswith(prefix["S"]))
        return "B" in value and base64.b64decode(value["B"]).startswith(base64.b64decode(prefix["B"]))


@dataclass(frozen=True, slots=True)
class Contains(Cond):
    subject: Operand
    member: Operand

    def test(self, item: Item, ctx: Ctx) -> bool:
        value, member = self.subject.get(item, ctx), self.member.get(item, ctx)
        if value is None or member is None:
            return False
        ((tag, inner),) = value.items()
        ((mtag, minner),) = member.items()
        if tag == "S":
            return mtag == "S" and minner in inner
        if tag == "B":
            return mtag == "B" and base64.b64decode(minner) in base64.b64decode(inner)
        if tag in SETS:
            return mtag == tag[0] and minner in inner
        if tag == "L":
            return any(equal(v, member) for v in inner)
        return False


# -- parsed expressions -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    """What an expression uses, for the per-request checks: placeholders and the value types its operators need."""

    kind: str  # "ConditionExpression", "UpdateExpression", ...
    names: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    checks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (operator, value placeholders)
    refs: list[PathRef] = field(default_factory=list)  # every path it names, in order

    def check(self, ctx: Ctx) -> None:
        """Errors DynamoDB reports before touching any item: operand types of literal values."""
        for op, refs in self.checks:
            values = [ctx.values[r] for r in refs]
            if op == "attribute_type":
                wanted = values[0].get("S")
                if wanted not in TYPES:
                    raise Invalid(
                        f"Invalid {self.kind}: Invalid attribute type name found; type: {wanted}, valid types: "
                        "{ B,NULL,SS,BOOL,L,BS,N,NS,S,M }"
                    )
                continue
            allowed = _OPERAND_TYPES.get(op, SCALARS)
            for value in values:
                if type_of(value) not in allowed:
                    word = "operator" if op in ("ADD", "DELETE") else "operator or function"
                    shown = _LONG_TYPE[type_of(value)] if op in ("ADD", "DELETE") else type_of(value)
                    raise Invalid(
                        f"Invalid {self.kind}: Incorrect operand type for operator or function; {word}: {op}, "
                        f"operand type: {shown}"
                    )
            if op == "BETWEEN" and len(values) == 2:
                low, high = values
                if type_of(low) != type_of(high):
                    raise Invalid(
                        f"Invalid {self.kind}: The BETWEEN operator requires same data type for lower and upper "
                        f"bounds; lower bound operand: AttributeValue: {_shown(low)}, upper bound operand: "
                        f"AttributeValue: {_shown(high)}"
                    )
                if (order(low, high) or 0) > 0:
                    raise Invalid(
                        f"Invalid {self.kind}: The BETWEEN operator requires upper bound to be greater than or equal "
                        f"to lower bound; lower bound operand: AttributeValue: {_shown(low)}, upper bound operand: "
                        f"AttributeValue: {_shown(high)}"
                    )


_OPERAND_TYPES = {"begins_with": ("S", "B"), "ADD": ("N", *SETS), "DELETE": SETS, "+": ("N",), "-": ("N",)}


def _shown(value: AV) -> str:
    ((tag, inner),) = value.items()
    return f"{{{tag}:{inner}}}"


@dataclass(slots=True)
class Condition(Parsed):
    root: Cond | None = None

    def test(self, item: Item, ctx: Ctx) -> bool:
        assert self.root is not None
        return self.root.test(item, ctx)


@dataclass(frozen=True, slots=True)
class Action:
    clause: str  # SET, REMOVE, ADD, DELETE
    path: PathRef
    value: Operand | None = None


@dataclass(slots=True)
class Update(Parsed):
    actions: list[Action] = field(default_factory=list)

    def apply(self, old: Item | None, base: Item, ctx: Ctx) -> tuple[Item, list[Path]]:
        """The item after this update (``base``: the key, when there is no item yet) and the paths it wrote.
        Every right-hand side is read from the item as it was, as DynamoDB does."""
        before = old if old is not None else base
        paths = [a.path.resolve(ctx) for a in self.actions]
        overlapping(paths, "UpdateExpression")
        sets = [
            (path, action.value.get(before, ctx))
            for action, path in zip(self.actions, paths, strict=True)
            if action.clause == "SET" and action.value is not None
        ]
        item = dict(before)
        for path, value in sets:
            set_path(item, path, value)
        removes = [p for a, p in zip(self.actions, paths, strict=True) if a.clause == "REMOVE"]
        for path in sorted(removes, key=lambda p: p[-1] if isinstance(p[-1], int) else -1, reverse=True):
            set_path(item, path, None)
        for action, path in zip(self.actions, paths, strict=True):
            if action.clause in ("ADD", "DELETE") and action.value is not None:
                operand = action.value.get(before, ctx)
                assert operand is not None
                set_path(item, path, _add(get_path(item, path), operand, action.clause == "DELETE"))
        return item, paths


def _add(current: AV | None, operand: AV, delete: bool) -> AV | None:
    tag = type_of(operand)
    if current is None:
        return None if delete else operand
    if type_of(current) != tag:
        raise Invalid(_WRONG_TYPE)
    if tag == "N":
        return {"N": add_numbers(current["N"], operand["N"])}
    if delete:
        gone = set(operand[tag])
        left = [m for m in current[tag] if m not in gone]
        return {tag: left} if left else None
    have = set(current[tag])
    return {tag: [*current[tag], *(m for m in operand[tag] if m not in have)]}


@dataclass(slots=True)
class Projection(Parsed):
    def resolve(self, ctx: Ctx) -> list[Path]:
        paths = [p.resolve(ctx) for p in self.refs]
        overlapping(paths, self.kind)
        return paths


# -- parsing ------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<name>#[A-Za-z0-9_]+)|(?P<value>:[A-Za-z0-9_]+)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<index>\d+)"
    r"|(?P<op><>|<=|>=|[=<>+\-(),.\[\]]))"
)
_KEYWORDS = ("AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE")
_CONDITION_FUNCTIONS = ("attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains")
_FUNCTIONS = (*_CONDITION_FUNCTIONS, "size", "if_not_exists", "list_append")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # name, value, word, index, op, keyword, end
    text: str
    start: int
    end: int


def _tokens(text: str, kind: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if not text[pos:].strip():
                break
            at = len(text) - len(text[pos:].lstrip())
            near = text[tokens[-1].start if tokens else at : at + 1]
            raise Invalid(f'Invalid {kind}: Syntax error; token: "{text[at]}", near: "{near}"')
        group = str(match.lastgroup)
        word = match.group(group)
        keyword = group == "word" and word.upper() in _KEYWORDS
        tokens.append(
            Token("keyword" if keyword else group, word.upper() if keyword else word, match.start(group), match.end())
        )
        pos = match.end()
    tokens.append(Token("end", "<EOF>", len(text), len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, parsed: Parsed) -> None:
        self.parsed = parsed
        self.kind = parsed.kind
        if not text.strip():
            raise Invalid(f"Invalid {self.kind}: The expression can not be empty;")
        self.text = text
        self.tokens = _tokens(text, self.kind)
        self.i = 0

    # -- tokens --
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "keyword") and token.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            self.fail()
        self.i += 1

    def fail(self) -> None:
        """A syntax error, quoting the offending token with its neighbours (as DynamoDB does)."""
        token, after = self.peek(), self.peek(1)
        near = self.text[self.tokens[self.i - 1].start if self.i else token.start : after.end]
        raise Invalid(f'Invalid {self.kind}: Syntax error; token: "{token.text}", near: "{near}"')

    def done(self) -> None:
        if self.peek().kind != "end":
            self.fail()

    # -- operands --
    def path(self) -> PathRef:
        elements: list[str | int] = [self.path_name()]
        while self.at(".", "["):
            if self.take().text == ".":
                elements.append(self.path_name())
            else:
                if self.peek().kind != "index":
                    self.fail()
                elements.append(int(self.take().text))
                self.expect("]")
        ref = PathRef(tuple(elements))
        self.parsed.refs.append(ref)
        return ref

    def path_name(self) -> str:
        token = self.peek()
        if token.kind == "name":
            self.parsed.names.add(token.text)
        elif token.kind == "keyword" or (token.kind == "word" and token.text.upper() in RESERVED):
            raise Invalid(f"Invalid {self.kind}: Attribute name is a reserved keyword; reserved keyword: {token.text}")
        elif token.kind != "word":
            self.fail()
        self.i += 1
        return token.text

    def value(self) -> ValueRef:
        token = self.take()
        if token.kind != "value":
            self.i -= 1
            self.fail()
        self.parsed.values.add(token.text)
        return ValueRef(token.text)

    def function_name(self) -> str | None:
        token = self.peek()
        if token.kind == "word" and self.peek(1).text == "(" and self.peek(1).kind == "op":
            if token.text not in _FUNCTIONS:
                raise Invalid(f"Invalid {self.kind}: Invalid function name; function: {token.text}")
            return token.text
        return None

    def not_here(self, function: str) -> None:
        raise Invalid(
            f"Invalid {self.kind}: The function is not allowed to be used this way in an expression; "
            f"function: {function}"
        )

    def operand(self) -> Operand:
        function = self.function_name()
        if function == "size":
            self.i += 2
            inner = self.path()
            self.expect(")")
            return Size(inner)
        if function is not None:
            self.not_here(function)
        if self.peek().kind == "value":
            return self.value()
        return self.path()

    def check(self, op: str, *operands: Operand) -> None:
        refs = tuple(o.name for o in operands if isinstance(o, ValueRef))
        if refs:
            self.parsed.checks.append((op, refs))

    # -- conditions --
    def condition(self) -> Cond:
        left = self.conjunction()
        while self.at("OR"):
            self.i += 1
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Cond:
        left = self.negation()
        while self.at("AND"):
            self.i += 1
            left = And(left, self.negation())
        return left

    def negation(self) -> Cond:
        if self.at("NOT"):
            self.i += 1
            return Not(self.negation())
        if self.at("("):
            self.i += 1
            inner = self.condition()
            self.expect(")")
            return inner
        function = self.function_name()
        if function in _CONDITION_FUNCTIONS:
            return self.call(str(function))
        if function in ("if_not_exists", "list_append"):
            self.not_here(str(function))
        return self.comparison()

    def call(self, function: str) -> Cond:
        self.i += 2
        first: Operand = self.path() if function.startswith("attribute") else self.operand()
        if function in ("attribute_exists", "attribute_not_exists"):
            self.expect(")")
            assert isinstance(first, PathRef)
            return Exists(first, function == "attribute_exists")
        self.expect(",")
        second = self.operand()
        self.expect(")")
        if function == "attribute_type":
            if not isinstance(second, ValueRef):
                self.fail()
            self.check("attribute_type", second)
            assert isinstance(first, PathRef)
            return AttributeType(first, second)
        if function == "begins_with":
            self.check("begins_with", second)
            return BeginsWith(first, second)
        return Contains(first, second)

    def comparison(self) -> Cond:
        left = self.operand()
        if self.at("BETWEEN"):
            self.i += 1
            low = self.operand()
            self.expect("AND")
            high = self.operand()
            self.check("BETWEEN", low, high)
            return Between(left, low, high)
        if self.at("IN"):
            self.i += 1
            self.expect("(")
            options = [self.operand()]
            while self.at(","):
                self.i += 1
                options.append(self.operand())
            self.expect(")")
            if len(options) > 100:
                raise Invalid(f"Invalid {self.kind}: The IN operator can take at most 100 operands")
            return In(left, tuple(options))
        if not self.at(*_COMPARE):
            self.fail()
        op = self.take().text
        right = self.operand()
        if op not in ("=", "<>"):
            self.check(op, left, right)
        return Compare(op, left, right)

    # -- updates --
    def update(self, parsed: Update) -> None:
        seen: set[str] = set()
        while self.peek().kind != "end":
            clause = self.take()
            if clause.kind != "keyword" or clause.text not in ("SET", "REMOVE", "ADD", "DELETE"):
                self.i -= 1
                self.fail()
            if clause.text in seen:
                raise Invalid(
                    f'Invalid UpdateExpression: The "{clause.text}" section can only be used once in an update '
                    "expression;"
                )
            seen.add(clause.text)
            while True:
                parsed.actions.append(self.action(clause.text))
                if not self.at(","):
                    break
                self.i += 1

    def action(self, clause: str) -> Action:
        path = self.path()
        if clause == "REMOVE":
            return Action(clause, path)
        if clause in ("ADD", "DELETE"):
            operand = self.value()
            self.check(clause, operand)
            return Action(clause, path, operand)
        self.expect("=")
        value = self.set_operand()
        if self.at("+", "-"):
            op = self.take().text
            right = self.set_operand()
            self.check(op, value, right)
            value = Arithmetic(op, value, right)
        return Action(clause, path, value)

    def set_operand(self) -> Operand:
        function = self.function_name()
        if function == "if_not_exists":
            self.i += 2
            path = self.path()
            self.expect(",")
            default = self.set_operand()
            self.expect(")")
            return IfNotExists(path, default)
        if function == "list_append":
            self.i += 2
            first = self.set_operand()
            self.expect(",")
            second = self.set_operand()
            self.expect(")")
            return ListAppend(first, second)
        if function is not None:
            self.not_here(function)
        return self.value() if self.peek().kind == "value" else self.path()


def parse_condition(text: str, kind: str = "ConditionExpression") -> Condition:
    """A condition, filter or key condition expression (``kind`` names it in error messages)."""
    parsed = Condition(kind)
    parser = _Parser(text, parsed)
    parsed.root = parser.condition()
    parser.done()
    return parsed


def parse_update(text: str) -> Update:
    parsed = Update("UpdateExpression")
    parser = _Parser(text, parsed)
    parser.update(parsed)
    return parsed


def parse_projection(text: str) -> Projection:
    parsed = Projection("ProjectionExpression")
    parser = _Parser(text, parsed)
    parser.path()
    while parser.at(","):
        parser.i += 1
        parser.path()
    parser.done()
    return parsed
