"""Training: LightningModules for generators, vision towers and CLIP, and their optimizer schedules."""
