"""What every stage shares: settings, the run folder, image loading, ONNX Runtime, plots, the pipeline, the CLI."""
