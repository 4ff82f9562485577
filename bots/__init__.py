"""Chat shopping: the transport-free conversation engine and its adapters (engine, WhatsApp and
Telegram issues). Nothing here yet; the package holds the place the layout gives it."""
