"""The pure segmentation engine: customer state, segment rules, evaluation. No I/O imports."""
