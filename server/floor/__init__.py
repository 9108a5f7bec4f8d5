"""The live floor: booths, CSOs, sessions and focus.

`core` is the pure engine (events in, effects out) with its parts `booths`, `officers` and
`supervision`; `views` builds what peers are told from its read model; `runtime` runs it on
asyncio against the ports, with `outbox` writing its audit entries.
"""

from server.floor.core import FloorConfig, FloorCore
from server.floor.runtime import ClaimLookupError, FloorRuntime, floor_config

__all__ = ["ClaimLookupError", "FloorConfig", "FloorCore", "FloorRuntime", "floor_config"]
