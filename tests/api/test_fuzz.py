"""Property-based fuzzing of the whole API against its own OpenAPI document (schemathesis).

Every operation gets a bounded number of generated requests, schema-valid and schema-violating;
none may answer 5xx, and every answer must match the documented status codes, content types and
response schemas. The admin key is sent, so the write operations are exercised past their guard.
(Driven through hypothesis directly: schemathesis' pytest fixture loader does not run on pytest 9.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.api.conftest import ADMIN_KEY, Corpus

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = 25  # per operation and mode: ~15 operations x 2 modes, a few seconds in all


@pytest.fixture(scope="module")
def api_schema(corpus: Corpus) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", corpus.client.app)


def operations(api_schema: schemathesis.schemas.BaseSchema) -> list[schemathesis.schemas.APIOperation]:
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_conforms_to_its_schema(api_schema: schemathesis.schemas.BaseSchema,
                                                mode: GenerationMode) -> None:
    found = operations(api_schema)
    assert len(found) >= 14, [op.label for op in found]
    checked_empty: list[str] = []
    for operation in found:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # nothing to violate: no parameters and no body (healthz, the lists)
            assert mode is GenerationMode.NEGATIVE, operation.label
            checked_empty.append(operation.label)
    if mode is GenerationMode.NEGATIVE:
        assert set(checked_empty) == parameterless(api_schema.raw_schema)


def parameterless(document: dict[str, Any]) -> set[str]:
    """Operations with neither parameters nor a body: nothing a negative case could break."""
    return {f"{method.upper()} {path}" for path, item in document["paths"].items()
            for method, operation in item.items()
            if not operation.get("parameters") and "requestBody" not in operation}
