"""The live floor: booths, CSOs, sessions and focus.

`core` is the pure engine (events in, effects out), `views` builds what peers are told,
`runtime` runs the core on asyncio against the ports.
"""

from server.floor.core import FloorConfig, FloorCore
from server.floor.runtime import ClaimLookupError, FloorRuntime, floor_config

__all__ = ["ClaimLookupError", "FloorConfig", "FloorCore", "FloorRuntime", "floor_config"]
