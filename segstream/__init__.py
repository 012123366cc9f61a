"""segstream: real-time customer segmentation for e-commerce email marketing."""
