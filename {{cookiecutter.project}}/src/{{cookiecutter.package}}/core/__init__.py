"""The bottom layer, shared by every stage: settings and their choices, result schemas, the run folder, images,
class names, tracking, ONNX Runtime. Nothing here imports a stage or torch."""
