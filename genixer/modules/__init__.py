"""LightningModules: generator training + prediction, vision-tower pretraining."""
