"""CSV (and other formats) import and export of the catalog, for the admin."""

from __future__ import annotations

from django.utils.text import slugify
from import_export import fields, resources
from import_export.widgets import DecimalWidget, ForeignKeyWidget

from shop.models import Category, Product


class CategoryByNameWidget(ForeignKeyWidget):
    """Categories are named in the sheet; a new name creates the category."""

    def __init__(self) -> None:
        super().__init__(Category, field="name")

    def clean(self, value, row=None, **kwargs):
        name = (value or "").strip()
        if not name:
            return None
        category = Category.objects.filter(name__iexact=name).first()
        if category is None:
            slug = slugify(name) or "categoria"
            base, suffix = slug, 2
            while Category.objects.filter(slug=slug).exists():
                slug, suffix = f"{base}-{suffix}", suffix + 1
            category = Category.objects.create(name=name, slug=slug)
        return category


class ProductResource(resources.ModelResource):
    category = fields.Field(
        attribute="category", column_name="category", widget=CategoryByNameWidget()
    )
    # Plain "19.90", whatever the admin's language: the file must re-import anywhere.
    price = fields.Field(
        attribute="price", column_name="price", widget=DecimalWidget(coerce_to_string=False)
    )

    class Meta:
        model = Product
        import_id_fields = ["sku"]
        fields = ["sku", "name", "category", "description", "price", "stock", "is_active"]
        export_order = fields
        skip_unchanged = True
        report_skipped = False
        clean_model_instances = True
