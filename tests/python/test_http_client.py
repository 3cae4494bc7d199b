"""pgward over Streamable HTTP with the official MCP Python SDK (`mcp` on PyPI).

Usage: test_http_client.py URL TOKEN

Driven by tests/e2e_python.rs, which starts pgward and mints TOKEN (scope db:read). Connects
with a bearer token, initializes, lists tools (query present, the db:admin tool absent), runs a
query and checks the structured rows. When the SDK also speaks the stateless 2026-07-28
revision (`ClientSession.discover`), does the same over it. Prints "ok" on success; any failed
check raises, so the exit status is non-zero.
"""

import asyncio
import contextlib
import sys

from mcp import ClientSession

SQL = "SELECT id FROM orders ORDER BY id LIMIT 2"


@contextlib.asynccontextmanager
async def connect(url, token):
    """The SDK's Streamable HTTP transport with `Authorization: Bearer TOKEN` on every request.

    mcp 1.x takes the headers directly (`streamablehttp_client`); 2.x takes a configured HTTP
    client (`streamable_http_client`).
    """
    headers = {"Authorization": f"Bearer {token}"}
    from mcp.client import streamable_http

    if hasattr(streamable_http, "streamablehttp_client"):
        async with streamable_http.streamablehttp_client(url, headers=headers) as (read, write, _):
            yield read, write
    else:
        from mcp.shared._httpx_utils import create_mcp_http_client

        async with create_mcp_http_client(headers=headers) as http_client:
            async with streamable_http.streamable_http_client(url, http_client=http_client) as streams:
                yield streams[0], streams[1]


def field(obj, snake, camel):
    """A result field: mcp 2.x names them in snake_case, 1.x in camelCase."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


async def exercise(session, how):
    tools = await session.list_tools()
    names = [t.name for t in tools.tools]
    assert "query" in names, f"{how}: query missing from {names}"
    assert "admin_orders" not in names, f"{how}: admin_orders listed for db:read: {names}"

    result = await session.call_tool("query", {"sql": SQL})
    assert not field(result, "is_error", "isError"), f"{how}: query failed: {result}"
    structured = field(result, "structured_content", "structuredContent")
    assert structured is not None, f"{how}: no structured content: {result}"
    assert structured["rows"] == [[1], [2]], f"{how}: rows {structured['rows']!r}"
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert "untrusted" in text, f"{how}: result text is not framed as untrusted: {text!r}"
    print(f"{how}: ok", file=sys.stderr)


async def main(url, token):
    async with connect(url, token) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert field(init, "server_info", "serverInfo").name, init
            await exercise(session, f"handshake {field(init, 'protocol_version', 'protocolVersion')}")

    if hasattr(ClientSession, "discover"):
        async with connect(url, token) as (read, write):
            async with ClientSession(read, write) as session:
                found = await session.discover()
                assert "2026-07-28" in field(found, "supported_versions", "supportedVersions"), found
                await exercise(session, "stateless 2026-07-28")

    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: test_http_client.py URL TOKEN")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
