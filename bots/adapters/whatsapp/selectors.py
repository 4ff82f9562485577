"""Every selector of WhatsApp Web the bot relies on, and nothing else: when WhatsApp changes its
markup, this is the one file to change (../shared/whatsapp-web/CONTRACT.md is the source).

Each concern lists its variants, newest first; the bot uses whichever matches. A concern that the
page should show and no variant matches is reported by name ("WhatsApp mudou a página: ...").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concern:
    name: str
    variants: tuple[str, ...]

    @property
    def any(self) -> str:
        """One CSS selector matching any variant."""
        return ", ".join(self.variants)


# Page states
LOADING = Concern("carregamento", ("#app progress", '[data-testid="wa-web-loading-screen"]'))
QR_HOLDER = Concern(
    "QR code", (".landing-wrapper div[data-ref]", '[data-testid="qrcode"][data-ref]')
)
QR_CANVAS = Concern(
    "QR code",
    (
        'canvas[aria-label="Scan this QR code to link a device!"]',
        'canvas[aria-label="Scan me!"]',
        '[data-testid="qrcode"] canvas',
    ),
)
QR_RELOAD = Concern("recarregar QR", ("div[data-ref] button",))
SYNCING_TEXT = "Loading your chats"
MAIN = Concern("lista de conversas", ("#pane-side", 'div[aria-label="Chat list"]'))

# Chat list
ROW = Concern(
    "conversa da lista",
    ('#pane-side div[role="grid"] div[role="row"]', '[data-testid="cell-frame-container"]'),
)
ROW_TITLE = Concern("nome da conversa", ("span[title]",))
UNREAD = Concern(
    "mensagens não lidas", ('span[aria-label*="unread"]', 'span[data-testid="icon-unread-count"]')
)

# Open chat
OPEN_CHAT = Concern("conversa aberta", ("#main",))
CHAT_NAME = Concern("nome da conversa aberta", ('#main header span[dir="auto"]',))
MESSAGE = Concern("mensagem", ("#main [data-id]",))
MESSAGE_META = Concern("autor da mensagem", ("div.copyable-text[data-pre-plain-text]",))
MESSAGE_TEXT = Concern(
    "texto da mensagem", ("span.selectable-text.copyable-text", '[data-testid="selectable-text"]')
)
EMOJI_IMAGE = "img.emoji"

# Sending
COMPOSE = Concern(
    "caixa de mensagem",
    (
        '#main footer .lexical-rich-text-input div[contenteditable="true"][role="textbox"]',
        '#main footer div[contenteditable="true"][role="textbox"]',
        'div[contenteditable="true"][data-tab="10"]',
    ),
)
SEND = Concern(
    "botão enviar",
    (
        'button[aria-label="Send"]',
        'span[data-icon="wds-ic-send-filled"]',
        'span[data-icon="send"]',
    ),
)
TICK_PENDING, TICK_SENT, TICK_DELIVERED = (
    'span[data-icon="msg-time"]',
    'span[data-icon="msg-check"]',
    'span[data-icon="msg-dblcheck"]',
)
INVALID_DIALOG = Concern("aviso de número inválido", ('[role="dialog"]',))
DIALOG_OK = "button"
