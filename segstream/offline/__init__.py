"""What runs without a worker: replay of a history, the synthetic shop, the memory footprint."""
