"""Schemathesis against `/api/v1`: requests generated from the OpenAPI document the API publishes (valid ones and
ones that break it) are sent to the app in process, and every answer goes through schemathesis' default checks:
no server error, documented status codes, content types and headers, bodies matching their schemas, valid data
accepted, invalid data rejected, and the API key actually required."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.channels.openapi import openapi_schema
from bot.server import create_app
from bot.settings import Settings
from bot.wiring import Project, build_runtime
from tests.fuzz.conftest import API_KEY
from tests.fuzz.strategies import fuzz

AUTH = {"Authorization": f"Bearer {API_KEY}"}

# The document as data: schemathesis' lazy loading from a fixture does not run under pytest 9 (it sets
# `node._nodeid`), and the first test below checks that the app serves exactly this document.
schema = schemathesis.openapi.from_dict(openapi_schema())


@pytest.fixture
def api_app(fuzz_project: Project, redis_target: str) -> Iterator[Starlette]:
    """The app with one API key, for one test: schemathesis runs its lifespan (warm-up, then closing the
    runtime) on its own event loop thread, from the first call to the end of the test (its pytest plugin ends
    every lifespan at teardown, and a kefu app, once shut down, does not start again)."""
    settings = Settings(data_dir=fuzz_project.data_dir, redis_url=redis_target)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KEFU_API_KEYS", f"fuzz:{API_KEY}")
        for name in ("KEFU_API_KEYS_FILE", "KEFU_WECHAT_TOKEN", "KEFU_WECOM_TOKEN"):
            env.delenv(name, raising=False)
        app = create_app(build_runtime(fuzz_project, settings), settings)
    yield app
    asgi.shutdown_lifespans()


def test_the_app_serves_the_document_under_test(api_app: Starlette) -> None:
    response = TestClient(api_app).get("/api/v1/openapi.json")  # no lifespan: the document needs no bot
    assert response.status_code == 200 and response.json() == schema.raw_schema


@schema.parametrize()
@settings(fuzz(40), suppress_health_check=[*fuzz(1).suppress_health_check, HealthCheck.function_scoped_fixture])
def test_api_v1_keeps_the_promises_of_its_openapi_schema(case: schemathesis.Case[Any], api_app: Starlette) -> None:
    # in process, also for the checks that send requests of their own (e.g. the same one without the key)
    case.operation.app = case.operation.schema.app = api_app
    case.call_and_validate(headers=AUTH, timeout=60)  # an answer that never ends fails, not hangs, the run
