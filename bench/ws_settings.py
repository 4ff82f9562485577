"""Production settings with a channel-layer prefix of its own, for bench/ws_fanout.py.

Redis pub/sub channels ignore the logical database: with the default prefix, the bench's broadcasts
(five a second, on ``asgi__group__room.services``) would reach every other process on the same Redis
listening to the Services room (a test suite, a dev server), whatever database it uses.
"""

from marketplace.settings import *  # noqa: F403
from marketplace.settings import CHANNEL_LAYERS

if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "bench_ws_fanout"
