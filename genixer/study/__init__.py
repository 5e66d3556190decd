"""The Genixer claim in miniature (``python study.py``): does filtered synthetic data train better models?"""
