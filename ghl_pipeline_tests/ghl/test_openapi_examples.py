"""The client fed responses built from GHL's official OpenAPI files' own examples (``openapi/``).

Every documented response parsed; where the examples contradict themselves (an export message with
``type: 1`` and ``messageType: "SMS"``, a ``total`` of 1234 for one message) the client says so
instead of returning nothing.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import GHLAuthError, GHLBadRequestError, GHLPaginationError
from ghl_pipeline.ghl.models import Contact, Location, User

OPENAPI = Path(__file__).parent / "openapi"
LOC = "ve9EPM428h8vShlRW1KT"  # the spec's own example location id
START = datetime(2024, 3, 27, tzinfo=UTC)
END = datetime(2024, 3, 28, tzinfo=UTC)


@cache
def _document(relative: str) -> dict:
    return json.loads((OPENAPI / relative).read_text())


def example(schema: dict, document: str) -> Any:
    """The example a schema documents: its own ``example``, else one built from its properties.

    ``$ref``s are followed (also into ``../common``); a property with neither example nor parts takes
    its enum's first value, or is left out.
    """
    if "$ref" in schema:
        target, _, pointer = schema["$ref"].partition("#")
        if target:
            document = str((Path(document).parent / target).as_posix()).replace("apps/../", "")
        node: Any = _document(document)
        for part in pointer.strip("/").split("/"):
            node = node[part]
        return example(node, document)
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "allOf" in schema:
        merged: dict = {}
        for part in schema["allOf"]:
            value = example(part, document)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    if schema.get("type") == "array" and "items" in schema:
        item = example(schema["items"], document)
        return [] if item is None else [item]
    if "properties" in schema:
        built = {name: example(sub, document) for name, sub in schema["properties"].items()}
        return {name: value for name, value in built.items() if value is not None}
    if schema.get("enum"):
        return schema["enum"][0]
    return None


def response_example(document: str, path: str, method: str = "get", status: str = "200") -> Any:
    """The example body of one documented response."""
    operation = _document(document)["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return example(schema, document)


def common_example(name: str) -> Any:
    """An error body from the shared ``common-schemas.json``."""
    return example({"$ref": f"#/components/schemas/{name}"}, "common/common-schemas.json")


def _client(answer) -> tuple[GHLClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = answer(request)
        return httpx.Response(status, json=body)

    client = GHLClient(
        token="pit-openapi-example-token",
        location_id=LOC,
        project_name="Spec Examples",
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    return client, seen


EXPORT = "/conversations/messages/export"


def test_the_spec_examples_are_what_these_tests_say_they_are():
    page = response_example("apps/conversations.json", EXPORT)
    (message,) = page["messages"]
    assert (message["type"], message["messageType"]) == (1, "SMS")  # contradicts itself
    assert page["total"] == 1234 and page["nextCursor"]
    assert (message["meta"]["callDuration"], message["meta"]["callStatus"]) == (120, "completed")


def test_the_export_example_is_kept_aside_with_its_reason_and_the_shortfall_is_said(caplog):
    page = response_example("apps/conversations.json", EXPORT)
    page["nextCursor"] = None  # "Null if no more results": the example as the last page
    client, seen = _client(lambda request: (200, page))
    with caplog.at_level(logging.WARNING, logger="ghl_pipeline.ghl.client"):
        pages = list(client.iter_call_pages(start=START, end=END))

    assert [call for p in pages for call in p.calls] == []
    (aside,) = [m for p in pages for m in p.unrecognised]
    assert aside.id == "ve9EPM428h8vShlRW1KT"
    assert aside.reason == "messageType 'SMS' contradicts type 1 (TYPE_CALL)"
    assert aside.raw == page["messages"][0]
    assert pages[0].total == 1234  # what the reconciliation check will hold the rows against
    messages = [r.getMessage() for r in caplog.records]
    assert any("ended after 1 of the 1234" in m for m in messages)
    assert any("ending the window here" in m for m in messages)
    assert len(seen) == 4  # the page, then three restarts that brought nothing new: no endless loop


def test_the_export_example_served_for_its_own_cursor_stops_instead_of_looping():
    page = response_example("apps/conversations.json", EXPORT)
    client, seen = _client(lambda request: (200, page))
    walk = client.iter_call_pages(start=START, end=END)
    first = next(walk)
    assert len(first.unrecognised) == 1 and first.next_cursor == page["nextCursor"]
    with pytest.raises(GHLPaginationError, match="already returned"):
        next(walk)
    assert len(seen) == 2


def test_the_example_message_with_a_call_type_from_the_enum_parses_the_spec_meta():
    page = response_example("apps/conversations.json", EXPORT)
    page["messages"][0]["messageType"] = "TYPE_CALL"  # the enum's own call spelling; type is 1 already
    page.update(nextCursor=None, total=1)
    client, _ = _client(lambda request: (200, page))
    (call,) = [call for p in client.iter_call_pages(start=START, end=END) for call in p.calls]
    # The spec's meta.callDuration/callStatus (not the live meta.call) is read too.
    assert (call.message_type, call.duration_seconds, call.call_status) == ("TYPE_CALL", 120, "completed")
    assert call.date_added == datetime(2024, 3, 27, 18, 13, 49, tzinfo=UTC)
    assert (call.user_id, call.direction, call.problems) == ("ve9EPM428kjkvShlRW1KT", "inbound", ())


def test_the_flat_messages_page_example_is_read_and_a_repeated_page_stops():
    page = response_example("apps/conversations.json", "/conversations/{conversationId}/messages")
    assert set(page) == {"lastMessageId", "nextPage", "messages"}  # the spec's flat form
    client, seen = _client(lambda request: (200, page))
    with pytest.raises(GHLPaginationError, match="repeat a page"):
        list(client.iter_conversation_calls("ve9EPM428h8vShlRW1KT"))  # its one message is an "SMS"
    assert seen[1].url.params["lastMessageId"] == "p1mRSHeLDhAms5q0LMr4"


def test_users_location_and_contact_examples_parse():
    bodies = {
        "/users/": response_example("apps/users.json", "/users/"),
        f"/locations/{LOC}": response_example("apps/locations.json", "/locations/{locationId}"),
        "/contacts/seD4PfOuKoVMLkEZqohJ": response_example("apps/contacts.json", "/contacts/{contactId}"),
    }
    client, _ = _client(lambda request: (200, bodies[request.url.path]))
    assert client.list_users() == {"0IHuJvc2ofPAAA8GzTRi": User("0IHuJvc2ofPAAA8GzTRi", "John Deo")}
    assert client.get_location() == Location(
        id=LOC, name="dentist", timezone="America/Chicago", country="IN", company_id="5DP4iH6HLkQsiKESj6rh"
    )
    contact = client.fetch_contacts({"seD4PfOuKoVMLkEZqohJ"})["seD4PfOuKoVMLkEZqohJ"]
    assert contact == Contact(
        id="seD4PfOuKoVMLkEZqohJ",
        name="rubika deo",
        phone="+18832327657",
        country="US",
        date_updated=datetime(2021, 7, 2, 5, 18, 26, 704000, tzinfo=UTC),
    )


def test_users_search_example_answers_where_the_list_answers_the_bad_request_example():
    search = response_example("apps/users.json", "/users/search")
    location = response_example("apps/locations.json", "/locations/{locationId}")

    def answer(request: httpx.Request):
        if request.url.path == "/users/":
            return 400, common_example("BadRequestDTO")
        if request.url.path == "/users/search":
            assert request.url.params["companyId"] == "5DP4iH6HLkQsiKESj6rh"  # from the location
            return 200, search
        return 200, location

    client, seen = _client(answer)
    assert client.list_users() == {"0IHuJvc2ofPAAA8GzTRi": User("0IHuJvc2ofPAAA8GzTRi", "John Deo")}
    assert [r.url.path for r in seen] == ["/users/", f"/locations/{LOC}", "/users/search"]


@pytest.mark.parametrize(
    ("status", "dto", "error", "message"),
    [
        (400, "BadRequestDTO", GHLBadRequestError, "Bad Request"),
        (401, "UnauthorizedDTO", GHLAuthError, "Invalid token: access token is invalid"),
        (422, "UnprocessableDTO", GHLBadRequestError, "Unprocessable Entity"),
    ],
)
def test_the_common_error_examples_become_typed_errors(status, dto, error, message):
    client, seen = _client(lambda request: (status, common_example(dto)))
    with pytest.raises(error) as caught:
        list(client.iter_call_pages(start=START, end=END))
    assert (caught.value.status, caught.value.message) == (status, message)
    assert len(seen) == 1  # none of them is retried
