"""The REST service for an exported model: the app (``app``), its settings, middleware, metrics and micro-batcher."""
