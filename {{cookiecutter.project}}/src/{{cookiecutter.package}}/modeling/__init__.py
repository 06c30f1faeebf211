"""Stage 2, modeling: backbones, pooling, features, linear probe, fine-tuning, choosing and evaluating."""
