"""A tool: a name, a description, a pydantic argument model and a function.

``Tool.schema()`` is the OpenAI function-calling format::

    {"type": "function",
     "function": {"name": ..., "description": ..., "parameters": <JSON schema of the args model>}}

``Tool.from_function(fn)`` builds the argument model from ``fn``'s signature (annotations and
defaults; string annotations, as under ``from __future__ import annotations``, are resolved in
``fn``'s module), so ``def calculator(expression: str) -> str`` becomes a tool with one required
string argument. ``Tool.call(arguments)`` validates with pydantic (``extra="forbid"``) and raises
:class:`~turngym.errors.ToolArgumentError` naming every bad field.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from turngym.errors import ToolArgumentError


def describe_validation_error(exc: pydantic.ValidationError) -> list[dict[str, str]]:
    """``[{"field": "a.b", "problem": "..."}]`` for each error pydantic found."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "<body>", "problem": err["msg"]}
        for err in exc.errors()
    ]


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer: its output, or the error the tool raised (both are shown to the model)."""

    ok: bool
    output: Any = None
    error: str | None = None

    def as_text(self) -> str:
        """The text an agent sees."""
        if not self.ok:
            return f"Error: {self.error}"
        return self.output if isinstance(self.output, str) else str(self.output)


@dataclass(frozen=True)
class Tool:
    """A callable tool with a JSON-schema'd argument model."""

    name: str
    description: str
    args_model: type[pydantic.BaseModel]
    fn: Callable[..., Any]
    """Called with the validated arguments as keyword arguments."""

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None) -> Tool:
        """Derive the argument model from ``fn``'s signature; the docstring's first line describes it."""
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn, eval_str=True).parameters.items():
            if param.annotation is inspect.Parameter.empty:
                raise TypeError(f"tool argument {pname!r} of {fn.__name__} needs a type annotation")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (param.annotation, default)
        model = pydantic.create_model(
            f"{fn.__name__}_args", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        doc = inspect.getdoc(fn) or ""
        return cls(name=name or fn.__name__, description=doc.split("\n")[0], args_model=model, fn=fn)

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema of this tool."""
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def validate(self, arguments: Mapping[str, Any]) -> pydantic.BaseModel:
        """Validate ``arguments``; raises :class:`ToolArgumentError` naming the bad fields."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(
                f"arguments of tool {self.name!r} must be a JSON object, got {type(arguments).__name__}"
            )
        try:
            return self.args_model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{p['field']}: {p['problem']}" for p in describe_validation_error(exc))
            raise ToolArgumentError(f"bad arguments for tool {self.name!r}: {problems}") from exc

    def run(self, args: pydantic.BaseModel) -> ToolResult:
        """Run on validated arguments; an exception the function raises becomes the result.

        The output must be JSON (str, numbers, bool, None, lists, dicts with str keys) so that a
        tool behaves the same in-process and over HTTP; any other value is an error result.
        """
        try:
            output = self.fn(**{k: getattr(args, k) for k in type(args).model_fields})
        except Exception as exc:  # the tool's own failure is its result, shown to the model
            return ToolResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return ToolResult(
                ok=False,
                error=f"tool {self.name!r} returned a value that is not JSON ({exc}); "
                "return str, numbers, lists or dicts",
            )
        return ToolResult(ok=True, output=output)

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Validate (raising :class:`ToolArgumentError`) then run."""
        return self.run(self.validate(arguments))
