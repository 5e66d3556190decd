"""Generation on unannotated images: queries, prompts, shard writing, merging."""
