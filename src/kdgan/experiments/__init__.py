"""Experiments: one driver compares methods on shared pretrained players over settings (datasets,
sizes), seeds and methods, described by data (comparison; per-method overrides in overrides, the
one table writer in tables); the demo (demo) and the paper's tables (reproduce, reproduce_tags)
are specs over it."""
