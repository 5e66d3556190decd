"""Converters from official annotation formats to generator-training annotations (one module per dataset)."""
