"""Loket's one wire protocol: typed messages, envelope, errors, schema, session states.

Pure: no sockets, no asyncio servers. The server and every client import from here.
"""

from signaling.codec import decode_inbound, decode_outbound, encode, error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import Role
from signaling.session import BoothSession, IllegalTransition, SessionEvent, SessionState
from signaling.version import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "BoothSession",
    "ErrorCode",
    "IllegalTransition",
    "ProtocolError",
    "Role",
    "SessionEvent",
    "SessionState",
    "decode_inbound",
    "decode_outbound",
    "encode",
    "error_reply",
]
