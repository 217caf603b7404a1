"""The event contracts as Spark SQL: the pydantic models' own check, run in the JVM.

Every record the streaming apps read is checked against its topic's contract. Running pydantic
per record means a Python worker per task and every record serialised to it; this module walks
each model's *core schema* (the exact rules pydantic-core enforces: types, required keys,
``extra="forbid"``, bounds, lengths, patterns, literals, the UTC time format) and writes the
same rules as one Spark SQL expression over the record parsed once into a VARIANT. A model
validator is Python code: its SQL twin sits beside it in ``globalmart.events`` (``SQL_TWINS``),
and a model with a validator that has no twin cannot be translated (``ContractTranslationError``),
so the two checks cannot silently drift apart. A parity test feeds both the same records.

The verdict comes from here; the human-readable reason of a rejected record still comes from
pydantic (``events.check_payload``), computed for the few rejected rows only. The short reason
written here is what a record gets should pydantic accept what this check refused.

JSON details matched to pydantic's parser: the last of duplicate keys counts (Spark must run
with ``spark.sql.variant.allowDuplicateKeys``, set by ``contracts.checked_records``), one JSON
object with nothing but whitespace after it (Spark's parser stops at the end of the first value,
so trailing content is checked here), UTF-8 only; numbers are read through their decimal text so
that a float is the correctly rounded double pydantic would read.

Every conversion is a ``try_`` form: Spark may compute a value's conversion ahead of the type
check guarding it (common subexpressions are evaluated before the CASE that uses them), and a
conversion that throws (10**30 as a BIGINT) would fail the whole micro-batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import count

from pydantic import BaseModel

from globalmart.events import RFC3339_UTC, StreamEvent, twins_of

NUMERIC_KINDS = "({kind} IN ('BIGINT', 'DOUBLE') OR {kind} LIKE 'DECIMAL%')"
JSON_WHITESPACE = r"[ \t\n\r]"
# a JSON string token (valid ones only matter: the text parsed already); possessive, so no backtracking
JSON_STRING = r'"(?:[^"\\]++|\\.)*+"'


class ContractTranslationError(TypeError):
    """A contract uses a rule this module cannot write as SQL: extend the translation (and the
    parity test) before the streaming apps may use that contract."""


def sql_text(value: str) -> str:
    """A Spark SQL string literal of ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def java_pattern(pattern: str) -> str:
    """A pydantic (Rust regex) pattern as a Java one. Only what the contracts use is accepted:
    anchored at both ends, no flags or look-around; Java's ``$`` would also match before a final
    line break, so the end anchor becomes ``\\z``."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or "(?" in pattern.replace("(?:", ""):
        raise ContractTranslationError(f"pattern {pattern!r}: only ^...$ patterns without flags are translated")
    return pattern[:-1] + r"\z"


@dataclass(frozen=True)
class Value:
    """A value's check: ``ok`` (SQL, never null: true when the value passes), ``typed`` (SQL: the
    value in its Spark type, meaningful when ok) and what it must be, for a reason."""

    ok: str
    typed: str
    must_be: str


@dataclass(frozen=True)
class FieldCheck:
    name: str
    ok: str
    typed: str
    reason: str


class _Translator:
    def __init__(self, received_at: str):
        self.received_at = received_at
        self._lambda_names = (f"v{n}" for n in count())

    # ---- one value: x is SQL of a VARIANT, never SQL NULL here (presence is the field's business)
    def value(self, schema: dict, x: str) -> Value:
        kind = f"schema_of_variant({x})"
        match schema["type"]:
            case "str":
                return self._text(schema, f"try_variant_get({x}, '$', 'string')", f"{kind} = 'STRING'")
            case "int":
                number = f"try_variant_get({x}, '$', 'bigint')"
                bounds = self._bounds(schema, number)
                return Value(f"({kind} = 'BIGINT' AND {bounds})", number, f"an integer{self._range(schema)}")
            case "float":
                number = f"try_cast(variant_get({x}, '$', 'string') AS DOUBLE)"  # the decimal text: correctly rounded
                finite = "TRUE" if schema.get("allow_inf_nan", True) else f"(NOT isnan({number}) AND abs({number}) < double('Infinity'))"
                bounds = self._bounds(schema, number)
                return Value(f"({NUMERIC_KINDS.format(kind=kind)} AND {finite} AND {bounds})", number, f"a number{self._range(schema)}")
            case "literal":
                return self._literal(schema["expected"], x, kind)
            case "nullable":
                inner = self.value(schema["schema"], x)
                return Value(f"(is_variant_null({x}) OR {inner.ok})",
                             f"CASE WHEN is_variant_null({x}) THEN NULL ELSE {inner.typed} END", f"null or {inner.must_be}")
            case "json-or-python":
                return self.value(schema["json_schema"], x)
            case "chain":
                return self._utc_time(schema, x, kind)
            case "list":
                return self._list(schema, x)
            case "model" | "function-after":
                return self.model(schema, x)
        raise ContractTranslationError(f"no SQL translation for a {schema['type']!r} schema")

    def _text(self, schema: dict, text: str, is_text: str) -> Value:
        rules = [is_text]
        if "min_length" in schema:
            rules.append(f"char_length({text}) >= {schema['min_length']}")
        if "max_length" in schema:
            rules.append(f"char_length({text}) <= {schema['max_length']}")
        if "pattern" in schema:
            rules.append(f"{text} RLIKE {sql_text(java_pattern(schema['pattern']))}")
        lengths = f" of {schema.get('min_length', 0)} to {schema['max_length']} characters" if "max_length" in schema else ""
        printable = " printable" if "pattern" in schema else ""
        return Value("(" + " AND ".join(rules) + ")", text, f"{printable} text{lengths}".strip())

    @staticmethod
    def _bounds(schema: dict, number: str) -> str:
        rules = [f"{number} {op} {float(schema[key])!r}D" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                 if key in schema]
        unsupported = set(schema) - {"type", "ge", "gt", "le", "lt", "allow_inf_nan", "strict", "metadata"}
        if unsupported:
            raise ContractTranslationError(f"number constraints {sorted(unsupported)} are not translated")
        return "(" + " AND ".join(rules or ["TRUE"]) + ")"

    @staticmethod
    def _range(schema: dict) -> str:
        low, high = schema.get("ge", schema.get("gt")), schema.get("le", schema.get("lt"))
        return f" from {low:g} to {high:g}" if low is not None and high is not None else ""

    def _literal(self, expected: list, x: str, kind: str) -> Value:
        if all(isinstance(item, str) for item in expected):
            text = f"try_variant_get({x}, '$', 'string')"
            choices = ", ".join(sql_text(item) for item in expected)
            return Value(f"({kind} = 'STRING' AND {text} IN ({choices}))", text, "one of " + ", ".join(expected))
        if all(isinstance(item, int) and not isinstance(item, bool) for item in expected):
            # pydantic matches an int literal by equality: 1.0 and true are 1 too
            number = f"try_cast(variant_get({x}, '$', 'string') AS DOUBLE)"
            as_number = f"CASE WHEN {kind} = 'BOOLEAN' THEN CASE WHEN try_variant_get({x}, '$', 'boolean') THEN 1D ELSE 0D END ELSE {number} END"
            choices = ", ".join(f"{item}D" for item in expected)
            ok = f"(({NUMERIC_KINDS.format(kind=kind)} OR {kind} = 'BOOLEAN') AND ({as_number}) IN ({choices}))"
            return Value(ok, f"try_cast(({as_number}) AS BIGINT)", "one of " + ", ".join(map(str, expected)))
        raise ContractTranslationError(f"literal {expected!r}: only all-text or all-integer literals are translated")

    def _utc_time(self, schema: dict, x: str, kind: str) -> Value:
        """The contracts' time: RFC 3339 text in UTC (``events.UtcDatetime``), microseconds truncated."""
        steps = schema["steps"]
        text_step = steps[0].get("schema", {}) if steps[0]["type"] == "custom-error" else steps[0]
        if not (len(steps) == 2 and text_step == {"type": "str", "pattern": RFC3339_UTC} and steps[1]["type"] == "datetime"
                and steps[1].get("tz_constraint") == 0):
            raise ContractTranslationError("only events.UtcDatetime's chain (RFC 3339 text, then a UTC datetime) is translated")
        text = f"try_variant_get({x}, '$', 'string')"
        parts = r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"

        def part(group: int) -> str:
            return f"regexp_extract({text}, {sql_text(parts)}, {group})"

        micros = f"rpad(substr({part(7)}, 1, 6), 6, '0')"
        seconds = f"try_cast(concat({part(6)}, '.', {micros}) AS DECIMAL(8, 6))"
        fields = ", ".join(f"try_cast({part(n)} AS INT)" for n in range(1, 6))
        moment = f"try_make_timestamp({fields}, {seconds}, 'UTC')"
        ok = (f"({kind} = 'STRING' AND {text} RLIKE {sql_text(java_pattern(RFC3339_UTC))} AND try_cast({part(1)} AS INT) >= 1 "
              f"AND try_cast({part(6)} AS INT) < 60 AND {moment} IS NOT NULL)")
        return Value(ok, moment, "an RFC 3339 time in UTC, like 2026-12-01T10:00:00.123Z")

    def _list(self, schema: dict, x: str) -> Value:
        items = f"try_variant_get({x}, '$', 'array<variant>')"
        name = next(self._lambda_names)
        inner = self.value(schema["items_schema"], name)
        sizes = [f"size({items}) >= {schema['min_length']}" if "min_length" in schema else "TRUE",
                 f"size({items}) <= {schema['max_length']}" if "max_length" in schema else "TRUE"]
        ok = f"({items} IS NOT NULL AND {' AND '.join(sizes)} AND forall({items}, {name} -> {inner.ok}))"
        typed = f"transform({items}, {name} -> {inner.typed})"
        return Value(ok, typed, f"a list of {schema.get('min_length', 0)} to {schema.get('max_length', 'any')} of {inner.must_be}")

    # ---- one object
    def fields(self, schema: dict, x: str) -> tuple[list[FieldCheck], list[tuple[str, str]], type[BaseModel]]:
        """The checks of a model's object ``x`` in order (its keys, its fields, its validators'
        twins), the typed fields, and the model."""
        validators = []
        while schema["type"] == "function-after":
            validators.append(schema["function"]["function"].__name__)
            schema = schema["schema"]
        if schema["type"] != "model" or schema["schema"]["type"] != "model-fields":
            raise ContractTranslationError(f"no SQL translation for a {schema['type']!r} model schema")
        model, config, fields = schema["cls"], schema.get("config", {}), schema["schema"]["fields"]
        as_map = f"try_variant_get({x}, '$', 'map<string, variant>')"
        names = ", ".join(sql_text(name) for name in fields)
        checks = [FieldCheck("", f"({as_map} IS NOT NULL)", "NULL", sql_text("must be a JSON object"))]
        if config.get("extra_fields_behavior") == "forbid":
            unknown = f"array_except(map_keys({as_map}), array({names}))"
            checks.append(FieldCheck("", f"(size({unknown}) = 0)", "NULL",
                                     f"concat('unknown field(s): ', array_join({unknown}, ', '))"))
        elif config.get("extra_fields_behavior", "ignore") != "ignore":
            raise ContractTranslationError("only extra='forbid' or 'ignore' is translated")
        typed = []
        for name, field in fields.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or field.get("validation_alias") or field.get("serialization_alias"):
                raise ContractTranslationError(f"field {name!r}: only plain field names are translated")
            value_schema, default = field["schema"], None
            if value_schema["type"] == "default":
                default, value_schema = value_schema, value_schema["schema"]
            present = f"variant_get({x}, '$.{name}')"
            check = self.value(value_schema, present)
            if default is None:
                ok, value = f"({present} IS NOT NULL AND {check.ok})", check.typed
                reason = f"{name}: required, must be {check.must_be}"
            else:
                absent = _sql_literal(default.get("default"))
                ok = f"({present} IS NULL OR {check.ok})"
                value = f"CASE WHEN {present} IS NULL THEN {absent} ELSE {check.typed} END"
                reason = f"{name}: must be {check.must_be}"
            checks.append(FieldCheck(name, ok, value, sql_text(reason)))
            typed.append((name, value))
        twins = twins_of(model)
        missing = [name for name in validators if name not in twins]
        if missing:
            raise ContractTranslationError(f"{model.__name__}: validators {missing} have no SQL twin (events.SQL_TWINS)")
        values = dict(typed) | {"received_at": self.received_at}
        for name in reversed(validators):  # pydantic runs the innermost (the parent's) first
            condition, reason = twins[name]
            checks.append(FieldCheck(name, f"coalesce({condition.format(**values)}, FALSE)", "NULL", sql_text(reason)))
        return checks, typed, model

    def model(self, schema: dict, x: str) -> Value:
        checks, typed, model = self.fields(schema, x)
        ok = "(" + " AND ".join(check.ok for check in checks) + ")"
        struct = "named_struct(" + ", ".join(f"{sql_text(name)}, {value}" for name, value in typed) + ")"
        return Value(ok, struct, f"a {model.__name__} object")


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS BIGINT)"  # a literal: never fails
    if isinstance(value, float):
        return f"{value!r}D"
    if isinstance(value, str):
        return sql_text(value)
    raise ContractTranslationError(f"default {value!r} is not translated")


@dataclass(frozen=True)
class NativeCheck:
    """A contract as SQL over a record's columns ``text`` (its value as a string), ``document``
    (``try_parse_json(text)``) and the broker timestamp: ``violation`` is NULL when the record
    passes, else a short reason; ``event`` the record as a struct of the contract's fields."""

    violation: str
    event: str


def one_object(depth: int) -> str:
    """A Java pattern: the text, with its strings removed, is one JSON object nested at most
    ``depth`` levels (the contract's own depth), with only whitespace around it."""
    plain = r"[^\[\]{}]"
    nested = ""
    for _ in range(depth - 1):
        inner = f"(?:{plain}|{nested})" if nested else plain
        nested = rf"\{{{inner}*+\}}|\[{inner}*+\]"
    inner = f"(?:{plain}|{nested})" if nested else plain
    return rf"\A{JSON_WHITESPACE}*+\{{{inner}*+\}}{JSON_WHITESPACE}*+\z"


def _depth(schema: dict) -> int:
    """How deep a valid document of ``schema`` nests objects and arrays."""
    match schema["type"]:
        case "function-after" | "default" | "nullable":
            return _depth(schema["schema"])
        case "json-or-python":
            return _depth(schema["json_schema"])
        case "model":
            return 1 + max((_depth(field["schema"]) for field in schema["schema"]["fields"].values()), default=0)
        case "list":
            return 1 + _depth(schema["items_schema"])
    return 0


@cache
def native_check(model: type[BaseModel], received_at: str = "kafka_timestamp") -> NativeCheck:
    """The contract of ``model`` as SQL (see ``NativeCheck``); ``received_at``: the SQL of the time
    the record reached the broker, for the event-time window."""
    schema = model.__pydantic_core_schema__
    translator = _Translator(received_at)
    checks, typed, _ = translator.fields(schema, "document")
    without_strings = f"regexp_replace(text, {sql_text(JSON_STRING)}, '')"
    cases = [
        ("text IS NULL", "'empty record (null value)'"),
        ("NOT is_valid_utf8(text)", "'not UTF-8 text'"),
        ("document IS NULL", "'not valid JSON'"),
        (f"NOT ({without_strings} RLIKE {sql_text(one_object(_depth(schema)))})",
         "'not one JSON object: something follows it, or it is not an object'"),
        *((f"NOT {check.ok}", check.reason) for check in checks),
    ]
    violation = "CASE " + " ".join(f"WHEN {when} THEN {then}" for when, then in cases) + " ELSE NULL END"
    event = "named_struct(" + ", ".join(f"{sql_text(name)}, {value}" for name, value in typed) + ")"
    return NativeCheck(violation, event)


def accepts_ticks(model: type[BaseModel]) -> bool:
    """The platform's ClockTicks travel on the topics of stream events."""
    return issubclass(model, StreamEvent)
