"""A property-based fuzz of the read API from its own OpenAPI spec (schemathesis): every
operation, with generated parameters that fit the spec and that break it, on seeded marts and
warehouse; whatever it sends, the API answers without a server error (a bad parameter is a 422).

The operations are walked in one test (schemathesis' pytest plugin does not run under pytest 9):
each gets its own bounded hypothesis run, and a summary of the answers is printed (``-s``)."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.app import KEY_HEADER, create_app
from tests.readmodel_fixtures import private_warehouse, seed_marts, seed_warehouse

EXAMPLES_PER_OPERATION = 12  # per generation mode: ~20 operations × 2 modes stay well under a minute


def test_no_generated_request_is_a_server_error(stream_env):
    with private_warehouse(stream_env) as env:
        seed_marts(env)
        seed_warehouse(env)
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(env))
        key = env.api.key.get_secret_value()
        statuses: Counter = Counter()
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            # a request can break the spec only through a parameter
            breakable = len(operation.query) + len(operation.path_parameters) > 0
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if breakable else 1]:
                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def answers_without_server_error(case):
                    response = case.call(headers={KEY_HEADER: key})
                    statuses[response.status_code] += 1
                    case.validate_response(response, checks=[not_a_server_error])

                answers_without_server_error()
    print(f"\nfuzz: {len(operations)} operations, {sum(statuses.values())} requests, "
          f"answers by status: {dict(sorted(statuses.items()))}")
    assert not any(status >= 500 for status in statuses)
