"""Stage 1, data acquisition and understanding: sources, checks, duplicates, splits, label review, data report."""
