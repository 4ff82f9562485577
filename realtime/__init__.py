"""The websocket protocol of ../shared/protocol.md and the live dashboard (realtime issue). Nothing
here yet; the package holds the place the layout gives it."""
