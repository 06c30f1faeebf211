"""Batch scoring of a folder of images or a CSV of paths into a CSV, resumable and shardable across machines."""
