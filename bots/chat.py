"""What flows between a chat adapter and the conversation engine: no transport in sight."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace

# The services that carry chats: the two real ones and the dashboard's simulator, and the
# order channel (shop.models.Channel) of each.
WHATSAPP, TELEGRAM, WEB = "WhatsApp", "Telegram", "Web"
SERVICE_CHANNELS = {WHATSAPP: "whatsapp", TELEGRAM: "telegram", WEB: "web"}
CHAT_SERVICES = tuple(SERVICE_CHANNELS)


@dataclass(frozen=True)
class IncomingMessage:
    """One message a customer sent, as an adapter read it.

    ``message_id`` is the transport's own id (WhatsApp's ``data-id``, Telegram's update id):
    the engine answers each id once. ``choice`` is the label of a pressed button, which means
    the same as typing it. ``is_text`` is false for photos, audio, stickers and the like.
    """

    service: str
    chat: str
    message_id: str
    text: str = ""
    customer_name: str = ""
    choice: str | None = None
    is_text: bool = True

    @property
    def said(self) -> str:
        return self.choice if self.choice is not None else self.text

    def cleaned(self) -> IncomingMessage:
        """The message without control characters (a NUL cannot even be stored in PostgreSQL)."""
        return replace(
            self,
            text=clean_text(self.text),
            choice=None if self.choice is None else clean_text(self.choice),
            customer_name=clean_text(self.customer_name),
        )


def clean_text(text: str) -> str:
    """``text`` without control characters and lone surrogates; line breaks and tabs stay."""
    return "".join(
        char for char in text if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cs")
    )


@dataclass(frozen=True)
class Reply:
    """One message to send back; ``buttons`` are choices an adapter may offer as buttons."""

    text: str
    buttons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What handling a message came to.

    ``duplicate``: the id was handled before, nothing to send. ``handoff_requested``: the
    customer just asked for a person. ``silenced``: a person has the chat; the bot kept quiet.
    """

    replies: list[Reply] = field(default_factory=list)
    customer: str = ""
    duplicate: bool = False
    handoff_requested: bool = False
    silenced: bool = False
