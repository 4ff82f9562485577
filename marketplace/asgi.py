"""ASGI entry point: HTTP through Django; the dashboard's websocket at /ws/ through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from realtime.routing import websocket_urlpatterns  # noqa: E402

# Everything loaded so far (Django, the apps, the URLconf) lives as long as the process: keep it
# out of the garbage collector's full passes, which otherwise paused broadcasts for ~55 ms (bench).
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A page on another site cannot open the dashboard's socket: the Origin must be ours.
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
