"""A local test double of WhatsApp Web, following /work/shared/whatsapp-web/CONTRACT.md."""

from tests.whatsapp_double.server import WhatsAppDouble, format_phone

__all__ = ["WhatsAppDouble", "format_phone"]
