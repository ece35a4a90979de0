"""Tools: specs with JSON schemas, tool-call parsers, a FastAPI tool server and httpx clients."""

from turngym.tools.client import AsyncToolClient, Toolbox, ToolClient
from turngym.tools.parsers import PARSERS, ParseError, ParseResult, ToolCall, parse_tool_calls
from turngym.tools.server import create_tool_app
from turngym.tools.spec import Tool, ToolResult

__all__ = [
    "PARSERS",
    "AsyncToolClient",
    "ParseError",
    "ParseResult",
    "Tool",
    "ToolCall",
    "ToolClient",
    "ToolResult",
    "Toolbox",
    "create_tool_app",
    "parse_tool_calls",
]
