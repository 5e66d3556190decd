"""Stage pipelines: ``run(cfg) -> metrics`` for train / generate / filter / evaluate."""
