"""Production settings plus the bench URLconf (the bare view to compare the API with), and a
channel-layer prefix of the benches' own.

Redis pub/sub channels ignore the logical database: with the default prefix, a bench's or a
soak's broadcasts (chat messages, statuses) would reach every other process listening on the same
Redis, a test suite or a dev server included, whatever database it uses.
"""

from marketplace.settings import *  # noqa: F403
from marketplace.settings import CHANNEL_LAYERS

ROOT_URLCONF = "bench.urls"

if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "bench"
