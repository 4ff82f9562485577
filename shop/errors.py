"""Domain errors of the shop. Each carries a message a customer or the owner can read."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from shop.models import OrderStatus


class ShopError(Exception):
    """Base of every refusal the shop gives for a business reason (not a bug)."""

    code = "shop_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Shortage:
    product_id: int
    sku: str
    name: str
    requested: int
    available: int


class InsufficientStock(ShopError):
    """One or more products cannot cover the quantity asked; names every one of them."""

    code = "insufficient_stock"

    def __init__(self, shortages: list[Shortage]) -> None:
        self.shortages = shortages
        parts = [
            _("%(name)s (asked %(requested)d, %(available)d left)")
            % {
                "name": shortage.name,
                "requested": shortage.requested,
                "available": shortage.available,
            }
            for shortage in shortages
        ]
        super().__init__(_("Not enough stock for: %(products)s.") % {"products": "; ".join(parts)})


class ProductUnavailable(ShopError):
    """A product asked for does not exist or is not for sale."""

    code = "product_unavailable"

    def __init__(self, product_ids: list[int]) -> None:
        self.product_ids = product_ids
        super().__init__(
            _("These products are not available: %(ids)s.")
            % {"ids": ", ".join(str(pk) for pk in product_ids)}
        )


class InvalidOrder(ShopError):
    """The order request itself is unusable (no lines, bad quantity, missing address)."""

    code = "invalid_order"


class IllegalStatusTransition(ShopError):
    """A status move the workflow does not allow (e.g. delivered -> pending)."""

    code = "illegal_status_transition"

    def __init__(self, *, order_number: str | None, from_status: str, to_status: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        labels = dict(OrderStatus.choices)
        super().__init__(
            _("Order #%(number)s cannot go from %(from)s to %(to)s.")
            % {
                "number": order_number,
                "from": labels.get(from_status, from_status),
                "to": labels.get(to_status, to_status),
            }
        )
