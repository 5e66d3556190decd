"""Original LLaVA-1.5 / Shikra checkpoint layouts -> our HF-format Genixer dirs (``python -m genixer.convert``)."""
