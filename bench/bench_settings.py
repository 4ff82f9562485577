"""Production settings plus the bench URLconf (the bare view to compare the API with)."""

from marketplace.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
