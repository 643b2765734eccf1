"""Experiments: comparing methods on shared pretrained players over datasets, sizes and seeds
(comparison), the demo (demo) and the paper's tables (reproduce, reproduce_tags)."""
