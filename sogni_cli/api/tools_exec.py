"""Synchronous composition tools: ``POST /v1/creative-agent/tools/execute`` (wire spec §2.3)."""

from __future__ import annotations

from typing import Any

PATH = "/v1/creative-agent/tools/execute"
TEXT_KEYS = ("message", "prompt", "enhanced_prompt", "enhancedPrompt", "lyrics", "script", "structure", "text",
             "content", "summary")


def execute_body(tool: str, arguments: dict[str, Any], token_type: str | None = None,
                 safe_content_filter: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"tool": tool, "arguments": dict(arguments)}
    if token_type:
        body["token_type"] = token_type
    if safe_content_filter is not None:
        body["safe_content_filter"] = safe_content_filter
    return body


def execute(client: Any, tool: str, arguments: dict[str, Any], token_type: str | None = None,
            safe_content_filter: bool | None = None, *, key: str | None = None) -> dict[str, Any]:
    """Run one composition tool (``key``: the Idempotency-Key decided before sending); returns ``data``."""
    body = client.request("POST", PATH, json=execute_body(tool, arguments, token_type, safe_content_filter),
                          idempotent=True, idempotency_key=key)
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
    return data if isinstance(data, dict) else {"result": data}


def result_text(data: dict[str, Any]) -> str | None:
    """The text a composition tool produced: ``data.message``, else the result's text keys, else a plan as
    JSON (compose_workflow returns ``steps``)."""
    import json

    msg = data.get("message")
    if isinstance(msg, str) and msg.strip():
        return msg
    result = data.get("result")
    if isinstance(result, str) and result.strip():
        return result
    if isinstance(result, dict):
        texts = [result[k] for k in TEXT_KEYS if isinstance(result.get(k), str) and result[k].strip()]
        if texts:
            return "\n\n".join(texts)
        if result:
            return json.dumps(result, indent=2, ensure_ascii=False)
    return None
