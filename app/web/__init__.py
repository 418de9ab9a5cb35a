"""Browser pages (Jinja2 + htmx)."""
