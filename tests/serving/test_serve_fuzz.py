"""Property-based fuzzing of the live API from its own OpenAPI schema (schemathesis), with
valid and invalid requests; bounded in examples per operation."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

EXAMPLES = 40  # per operation and mode: ~320 requests, seconds on the tiny model


def named_problems(detail: object) -> bool:
    """A 4xx body names what is wrong: a message, or a field and a message for each problem."""
    if isinstance(detail, str):
        return bool(detail.strip())
    return bool(detail) and all(p.get("field") and p.get("message") for p in detail)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_fuzzed_request_gets_a_5xx_and_every_4xx_names_its_problem(live_server, mode):
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "POST /predict/batch"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing to get wrong in a GET without parameters

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=live_server, timeout=10)
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            if response.status_code >= 400:
                detail = response.json()["detail"]
                assert named_problems(detail), (case.as_curl_command(), response.text)

        check()
