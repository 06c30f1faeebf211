"""Stage 3, deployment: export, scoring and serving.

Scoring and serving need ONNX Runtime, numpy and Pillow only: nothing here imports torch or the modeling
package at import time (export imports them when it runs).
"""
