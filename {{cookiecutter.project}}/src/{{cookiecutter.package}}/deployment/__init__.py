"""Stage 3, deployment: export, scoring and serving.

In reading order:
* ``steps``: the step each deployment notebook runs (export, batch scoring, trying the service);
* ``export`` (the ONNX file, its metadata and model card) and ``quantize`` (the optional INT8 copy);
* ``predict``: loads an exported model folder and runs it; scoring and serving both use it;
* ``registry``: registers exported models in MLflow, promotes them, and resolves ``models:/`` URIs to folders;
* ``scoring``: batch scoring into a CSV (``batch_score``), split across machines (``shards``), resumed only
  with the same model and input (``provenance``);
* ``service``: the REST service (``app``; ``settings``, ``middleware``, ``protocol``, ``metrics``, ``batcher``,
  and the page it serves);
* ``launcher``: starts the service as a child process and waits until it is ready (tests, notebook, benchmarks);
* ``report``: the exit report.

Scoring and serving need ONNX Runtime, numpy and Pillow only: nothing here imports torch or the modeling
package at import time (export imports them when it runs).
"""
