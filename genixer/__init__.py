"""Genixer: multimodal LLMs as data generators, end to end."""
__version__ = "0.1.0"
