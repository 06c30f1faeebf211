"""The run sizes ``pipeline --profile`` offers: values injected into the notebooks' parameters cells."""

# Values the pipeline injects into the notebooks' parameters cells, per profile.
# smoke: seconds, for tests; demo: minutes on a 2-core CPU; full: best accuracy.
PROFILES: dict[str, dict[str, object]] = {
    "smoke": {"MAX_PER_CLASS": 12, "RESOLUTION": 96, "BATCH_SIZE": 16, "FINE_TUNE_RESOLUTION": 64, "EPOCHS": 1},
    "demo": {"MAX_PER_CLASS": 0, "RESOLUTION": 224, "BATCH_SIZE": 32, "FINE_TUNE_RESOLUTION": 160, "EPOCHS": 9},
    "full": {
        "MAX_PER_CLASS": 0,
        "RESOLUTION": 224,
        "BATCH_SIZE": 32,
        "FINE_TUNE_RESOLUTION": 224,
        "EPOCHS": 30,
        "PATIENCE": 8,  # a long one-cycle schedule wanders on validation before it settles
    },
}


def profile_values(name: str) -> dict[str, object]:
    if name not in PROFILES:
        raise ValueError(f"Invalid profile {name!r}. Only {', '.join(PROFILES)} are supported.")
    return dict(PROFILES[name])
