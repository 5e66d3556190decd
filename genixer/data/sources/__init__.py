"""Converters from official annotation formats to generator-training annotations."""
