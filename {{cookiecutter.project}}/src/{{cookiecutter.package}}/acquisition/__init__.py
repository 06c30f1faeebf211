"""Stage 1, data acquisition and understanding: sources (and their unused columns), checks, duplicates, subject
groups, splits, label review, data report."""
