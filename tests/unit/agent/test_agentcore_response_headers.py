"""Why the app's 503 answers carry no ``Retry-After`` (docs/service-facts.md, AgentCore).

The SDK would let the app set one: ``BedrockAgentCoreApp._handle_invocation`` returns a
Starlette ``Response`` from the entrypoint unchanged, headers included (what a local caller
sees). But ``InvokeAgentRuntime``, the only way a deployed agent is called, answers with a
fixed set of headers in its API model, and AgentCore's only header setting is a request
allowlist (``Authorization`` and ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-*``): a header the
container sets has no documented way to the caller.
"""

from __future__ import annotations

import botocore.session
from bedrock_agentcore.runtime import BedrockAgentCoreApp
from starlette.responses import JSONResponse
from starlette.testclient import TestClient


def test_the_sdk_passes_a_handlers_response_headers_to_a_local_caller() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def invoke(payload, context):
        return JSONResponse({"error": "unavailable"}, status_code=503, headers={"Retry-After": "5"})

    response = TestClient(app).post("/invocations", json={"prompt": "hi"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


def test_invoke_agent_runtime_answers_with_a_fixed_set_of_headers_without_retry_after() -> None:
    model = botocore.session.get_session().get_service_model("bedrock-agentcore")
    output = model.operation_model("InvokeAgentRuntime").output_shape
    headers = {m.serialization["name"] for m in output.members.values() if m.serialization.get("location") == "header"}
    assert headers == {
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "X-Amzn-Bedrock-AgentCore-Runtime-Session-Endpoint-Url",
        "Mcp-Session-Id", "Mcp-Protocol-Version", "X-Amzn-Trace-Id", "traceparent", "tracestate", "baggage",
        "Content-Type",
    }
