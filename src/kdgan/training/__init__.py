"""Training: the :class:`~kdgan.training.engine.Trainer` that runs a method's players in its update
order (engine), a network with its optimizer (players), the per-epoch output cache (cache),
checkpoints and run directories with their lock (runs, runlock), seeding and RNG state (seeding),
torchrun (distributed), metric logging (tracking), and building all of it from a config (build)."""
