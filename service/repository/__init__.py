"""Read queries over the stores and the snapshot, returning API schemas (handlers stay thin)."""
