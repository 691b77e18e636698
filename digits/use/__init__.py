"""Using the model: predict on photos and scans, and the draw-a-digit page."""
