"""WebSocket close codes callscope uses, on the supervisor feed and the media streams.

Standard codes (RFC 6455) where one fits; application codes 4xxx mirror the HTTP status a
request would have got (4400 bad input, 4401 no or unknown token, …)."""

from typing import Final

NORMAL: Final = 1000  # done: the stream ended, the call completed
GOING_AWAY: Final = 1001  # the server is shutting down: reconnect elsewhere
INTERNAL_ERROR: Final = 1011  # the server failed; reconnect and resume
TRY_AGAIN_LATER: Final = 1013  # overloaded or storage away: nothing unacknowledged was kept
BAD_REQUEST: Final = 4400  # the client broke the protocol; the reason says how
NOT_AUTHENTICATED: Final = 4401
FORBIDDEN: Final = 4403
TOO_SLOW: Final = 4408  # a supervisor that cannot keep up with the feed
CONFLICT: Final = 4409  # the call no longer takes frames, or a frame conflicts with a stored one
