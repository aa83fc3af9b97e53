"""The OpenAPI document says what the server answers, not only what handlers return on success."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.http.docs import EXTRA_ANSWERS
from interface.wiring import wire

pytestmark = pytest.mark.anyio

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
BIGINT_MAX = 2**63 - 1
JSON = {"Content-Type": "application/json"}
SSE_PATHS = (
    "/api/v1/execution-logs/{execution_id}/sse",
    "/api/v1/execution-logs/{execution_id}/stream",
    "/api/v1/sse/executions/{execution_id}/stream",
)


async def document_of(client: Any) -> dict[str, Any]:
    response = await client.get("/api-openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, item[method]) for path, item in document["paths"].items()
            for method in HTTP_METHODS if method in item]


def integer_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The integer branch of a parameter schema (``int`` or ``int | None``)."""
    for branch in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        if branch.get("type") == "integer":
            return branch
    return None


def parameters(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


async def test_every_integer_parameter_is_bounded_within_bigint(client) -> None:
    document = await document_of(client)
    unbounded, offsets = [], []
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            schema = integer_schema(parameter["schema"])
            if schema is None:
                continue
            if parameter["name"] == "offset":
                offsets.append((schema["maximum"], path))
            if not (schema.get("minimum", -1) >= 0 and schema.get("maximum", BIGINT_MAX + 1) <= BIGINT_MAX):
                unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert unbounded == []
    assert len(offsets) >= 16
    # SQL adds the page size to the offset: the sum must stay a bigint too.
    assert all(maximum + 1000 <= BIGINT_MAX for maximum, _ in offsets)


async def test_validation_errors_are_documented_as_422_in_pydantic_shape_and_400_nowhere(client) -> None:
    document = await document_of(client)
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert "400" not in responses, f"{method} {path}"
        shapes = responses["422"]["content"]["application/json"]["schema"]["anyOf"]
        assert {"$ref": "#/components/schemas/ValidationErrors"} in shapes, f"{method} {path}"
    issue = document["components"]["schemas"]["ValidationIssue"]
    assert set(issue["required"]) == {"type", "loc", "msg"}


async def test_resources_document_404_writes_409_and_if_match_412(client) -> None:
    document = await document_of(client)
    conditional = 0
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if parameters(operation, "path"):
            assert "404" in responses, f"{method} {path}"
        if method != "get":
            assert "409" in responses, f"{method} {path}"
        if any(p["name"].lower() == "if-match" for p in parameters(operation, "header")):
            conditional += 1
            assert "412" in responses, f"{method} {path}"
        else:
            assert "412" not in responses, f"{method} {path}"
    assert conditional >= 20


async def test_no_content_answers_document_no_body(client) -> None:
    document = await document_of(client)
    deletes = [op["responses"]["204"] for _, _, op in operations(document) if "204" in op["responses"]]
    assert len(deletes) >= 9
    assert all("content" not in response for response in deletes)


async def test_streams_are_documented_as_server_sent_events(client) -> None:
    document = await document_of(client)
    for path in SSE_PATHS:
        success = document["paths"][path]["get"]["responses"]["200"]
        assert list(success["content"]) == ["text/event-stream"], path
    listing = document["paths"]["/api/v1/execution-logs/{execution_id}"]["get"]["responses"]["200"]
    assert list(listing["content"]) == ["application/json"]


async def test_token_mode_documents_bearer_tokens_and_their_refusals_and_local_mode_neither(client, settings) -> None:
    local = await document_of(client)
    assert "securitySchemes" not in local["components"] and "security" not in local
    assert not any("401" in op["responses"] for _, _, op in operations(local))
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        document = await document_of(client)
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["bearerToken"]
    assert (schemes["bearerToken"]["type"], schemes["bearerToken"]["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearerToken": []}]
    health = document["paths"]["/health"]["get"]
    assert health["security"] == [] and "401" not in health["responses"]
    for path, method, operation in operations(document):
        if path.startswith("/api/v1/"):
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"


async def test_every_documentation_path_serves_the_same_document(client) -> None:
    document = await document_of(client)
    assert (await client.get("/api-docs/openapi.json")).json() == document
    swagger = (await client.get("/api-docs")).text
    assert "ValidationErrors" in swagger and "text/event-stream" in swagger


async def test_every_answer_known_only_to_a_handler_names_a_documented_operation(client) -> None:
    document = await document_of(client)
    for (method, path), answers in EXTRA_ANSWERS.items():
        operation = document["paths"][path][method]
        assert set(answers) <= set(operation["responses"]), f"{method} {path}"


async def test_every_page_documents_the_schema_of_its_items(client) -> None:
    """A page names its item type itself: inherited from the generic ``Page`` only, it would be an empty ``Struct``."""
    schemas = (await document_of(client))["components"]["schemas"]
    pages = {name: schema for name, schema in schemas.items() if "items" in schema.get("properties", {})}
    assert len(pages) >= 12
    for name, page in pages.items():
        reference = page["properties"]["items"]["items"].get("$ref", "")
        item = schemas.get(reference.removeprefix("#/components/schemas/"), {})
        assert item.get("properties"), name


def documented_schema(document: dict[str, Any], template: str, method: str, status: int) -> dict[str, Any]:
    """The schema an answer's body must match, resolvable on its own (its ``$ref``s point into the document)."""
    responses = document["paths"][template][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {template} answers {status}, undocumented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def assert_documented(document: dict[str, Any], template: str, method: str, response: Any) -> None:
    schema = documented_schema(document, template, method, response.status_code)
    jsonschema.Draft202012Validator(schema).validate(response.json())


async def test_the_error_bodies_the_api_sends_match_the_documented_schemas(client, settings) -> None:
    document = await document_of(client)
    agent = (await client.post("/api/v1/agents", json={"role": "R", "goal": "G", "backstory": "B"})).json()
    missing = "00000000-0000-0000-0000-000000000000"
    answers = [
        ("/api/v1/agents/{agent_id}", "get", await client.get(f"/api/v1/agents/{missing}"), 404),
        ("/api/v1/agents/{agent_id}", "get", await client.get("/api/v1/agents/not-an-id"), 404),
        ("/api/v1/agents", "post", await client.post("/api/v1/agents", json={"role": "R"}), 422),
        ("/api/v1/agents", "post", await client.post("/api/v1/agents", content=b"{", headers=JSON), 422),
        ("/api/v1/agents", "get", await client.get("/api/v1/agents", params={"limit": -1}), 422),
        ("/api/v1/executions", "post", await client.post("/api/v1/executions", json={}), 422),
        ("/api/v1/tools", "post", await client.post("/api/v1/tools", json={"name": "SerperDevTool"}), 409),
        ("/api/v1/agents/{agent_id}", "put",
         await client.put(f"/api/v1/agents/{agent['id']}", json={"goal": "New"}, headers={"If-Match": '"9"'}), 412),
        ("/api/v1/agents", "post",
         await client.post("/api/v1/agents", content=b" " * (settings.max_body_bytes + 1), headers=JSON), 413),
    ]
    for template, method, response, status in answers:
        assert response.status_code == status, (template, response.text)
        assert_documented(document, template, method, response)
    shapes = {tuple(sorted(r.json())) for *_, r, _ in answers}
    assert shapes == {("detail",), ("detail", "errors", "type")}  # both 422 shapes were sent and checked
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as token_client:
        document = await document_of(token_client)
        refused = await token_client.get("/api/v1/agents")
        assert refused.status_code == 401
        assert_documented(document, "/api/v1/agents", "get", refused)


async def test_a_body_unlike_the_documented_error_fails_validation(client) -> None:
    """The check above can fail: Litestar's own error shape is not what the document promises."""
    document = await document_of(client)
    schema = documented_schema(document, "/api/v1/agents", "post", 422)
    litestar_shape = {"status_code": 400, "detail": "Validation failed for POST /api/v1/agents", "extra": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(litestar_shape)
