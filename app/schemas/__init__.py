"""Pydantic shapes for forms, the JSON API and imports (never SQLAlchemy models)."""
