"""JSON Schema of every message, per role and direction (`loket schema` prints it)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from signaling.messages import INBOUND, OUTBOUND, Envelope
from signaling.version import PROTOCOL_VERSION


def _union_schema(models: tuple[type[Envelope], ...]) -> dict[str, Any]:
    # A runtime-built union: mypy cannot see a tuple of types as a type, pydantic can.
    union = Annotated[Union[models], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union).json_schema(ref_template="#/$defs/{model}")


def protocol_schema() -> dict[str, Any]:
    """One document: `$defs` shared, plus `<role>_to_server` / `server_to_<role>` roots."""
    defs: dict[str, Any] = {}
    roots: dict[str, Any] = {}
    for direction, table in (("to_server", INBOUND), ("from_server", OUTBOUND)):
        for role, models in table.items():
            schema = _union_schema(models)
            defs.update(schema.pop("$defs", {}))
            roots[f"{role}_{direction}"] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Loket signaling protocol v{PROTOCOL_VERSION}",
        "protocol_version": PROTOCOL_VERSION,
        "messages": roots,
        "$defs": defs,
    }
