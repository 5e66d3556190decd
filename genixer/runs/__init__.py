"""The run layer every stage uses and no stage owns: run-dir paths, manifests, shards, resume, settings claims, progress."""
