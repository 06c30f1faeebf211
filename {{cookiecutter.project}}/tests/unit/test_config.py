import pytest

from {{ cookiecutter.package }}.core.config import (
    CONFIGS,
    ConfigError,
    DataConfig,
    EvaluateConfig,
    FineTuneConfig,
    ProbeConfig,
    from_parameters,
    parameter_names,
)
from {{ cookiecutter.package }}.core.profiles import PROFILES
from {{ cookiecutter.package }}.core.profiles import profile_values as profile
from {{ cookiecutter.package }}.orchestration.pipeline import declared_parameters, notebook_paths


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="Invalid backbone 'resnet9000'.*efficientnet_lite0"):
        ProbeConfig(backbone="resnet9000")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "BATCH_SIZE=0"),
        ({"resolution": 8}, "RESOLUTION=8 is outside"),
        ({"c_grid": (0.1, -1.0)}, "C_GRID"),
        ({"classifier": "forest"}, "Invalid CLASSIFIER 'forest'.*logistic_regression"),
        ({"pooling": "max"}, "Invalid POOLING 'max'. Only auto, average, bilinear"),
        ({"resize": "squash"}, "Invalid RESIZE 'squash'. Only stretch, crop, pad"),
    ],
)
def test_bad_probe_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ProbeConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 0.0}, "VAL_FRACTION"),
        ({"test_fraction": 1.5}, "TEST_FRACTION"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "leaves no training images"),
        ({"max_per_class": -1}, "MAX_PER_CLASS"),
        ({"sample": "", "data_dir": ""}, "DATA_DIR"),
        ({"duplicate_distance": 99}, "DUPLICATE_DISTANCE=99 must be -1"),
        ({"drop_duplicates": "yes"}, "DROP_DUPLICATES='yes' must be True or False"),
        ({"max_pixels": 0}, "MAX_PIXELS=0"),
        ({"workers": -2}, "WORKERS=-2"),
    ],
)
def test_bad_data_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig(**{"sample": "any", **kwargs})


def test_profiles_and_unknown_profile():
    assert profile("smoke")["RESOLUTION"] < profile("demo")["RESOLUTION"]
    with pytest.raises(ValueError, match="Only smoke, demo, full"):
        profile("huge")


@pytest.fixture(scope="module")
def declared():
    """Every parameter some notebook declares, read once for all profiles."""
    return set().union(*declared_parameters(notebook_paths()).values())


@pytest.mark.bake
@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_value_is_a_notebook_parameter_the_configs_accept(name, declared):
    values = profile(name)
    assert set(values) <= declared, f"profile {name} sets parameters no notebook declares"
    fine_tune_config({key: value for key, value in values.items() if key in parameter_names(FineTuneConfig).values()})
    ProbeConfig(resolution=values["RESOLUTION"], batch_size=values["BATCH_SIZE"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "vgg16"}, "Invalid backbone 'vgg16'. Only efficientnet_lite0, .*resnet152"),
        ({"learning_rate": -0.1}, "LEARNING_RATE=-0.1 must be positive"),
        ({"batch_size": 0}, "BATCH_SIZE=0 must be at least 1"),
        ({"backbone": "alexnet", "resolution": 32}, "FINE_TUNE_RESOLUTION=32 is outside what alexnet takes: use 64"),
        ({"optimizer": "adam"}, "Invalid OPTIMIZER 'adam'. Only adamw, sgd"),
        ({"schedule": "step"}, "Invalid SCHEDULE 'step'. Only onecycle, cosine, constant"),
        ({"class_weights": "auto"}, "Invalid CLASS_WEIGHTS 'auto'. Only none, balanced"),
        ({"weights": "missing.pth"}, "BACKBONE_WEIGHTS='missing.pth' is neither 'pretrained' nor 'none'"),
        ({"resize": "fit"}, "Invalid RESIZE 'fit'. Only stretch, crop, pad"),
        ({"flips": "diagonal"}, "Invalid FLIPS 'diagonal'. Only auto, none, horizontal, all"),
        ({"augment_strength": "strong"}, "AUGMENT_STRENGTH='strong' must be 'auto' or 0"),
        ({"augment_strength": 3.0}, "AUGMENT_STRENGTH=3.0 must be 'auto' or 0"),
        ({"head_init": "imagenet"}, "Invalid HEAD_INIT 'imagenet'. Only probe, random"),
        ({"test_views": "sideways"}, "Invalid TEST_VIEWS 'sideways'. Only auto, none, horizontal, all"),
        ({"backbone_lr_scale": 0.0}, "BACKBONE_LR_SCALE=0.0 must be above 0 and at most 1"),
        ({"ema_decay": 1.0}, "EMA_DECAY=1.0 must be 0 \\(off\\) or below 1"),
        ({"eval_scales": (0.5,)}, "EVAL_SCALES=\\[0.5\\] must list factors of at least 1"),
        ({"eval_scales": (1.0, 8.0)}, "8.0 x FINE_TUNE_RESOLUTION=160 is above the 1024 pixels"),
    ],
)
def test_bad_fine_tune_settings_name_the_parameter_and_the_choices(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FineTuneConfig(**kwargs)


def test_train_command_parameters_use_the_notebook_names():
    cfg = fine_tune_config({"EPOCHS": 2, "FINE_TUNE_RESOLUTION": 64, "BACKBONE_WEIGHTS": "none"})
    assert (cfg.epochs, cfg.resolution, cfg.weights) == (2, 64, "none")
    with pytest.raises(ConfigError, match="Unknown parameter.*EPOCS.*Valid parameters: .*EPOCHS"):
        fine_tune_config({"EPOCS": 2})


def fine_tune_config(values: dict) -> FineTuneConfig:
    return from_parameters(FineTuneConfig, values)


@pytest.mark.parametrize(
    ("sample", "flips", "strength"),
    [("elpv", "all", 0.5), ("digits", "none", 1.0), ("", "horizontal", 1.0), ("someone_elses", "horizontal", 1.0)],
)
def test_auto_augmentation_follows_the_data_not_the_bake(sample, flips, strength):
    cfg = FineTuneConfig().with_data_defaults(sample)
    assert (cfg.flips, cfg.augment_strength) == (flips, strength)


def test_explicit_augmentation_settings_win_over_the_data_defaults():
    cfg = FineTuneConfig(flips="none", augment_strength=0.0).with_data_defaults("elpv")
    assert (cfg.flips, cfg.augment_strength) == ("none", 0.0)


def notebook_defaults() -> dict[str, object]:
    """Every notebook's parameters cell values, by name (one value per name across notebooks)."""
    import ast

    import papermill

    found: dict[str, set] = {}
    for notebook in notebook_paths():
        for name, parameter in papermill.inspect_notebook(str(notebook)).items():
            found.setdefault(name, set()).add(repr(ast.literal_eval(parameter["default"])))
    assert all(len(values) == 1 for values in found.values()), {k: v for k, v in found.items() if len(v) > 1}
    return {name: ast.literal_eval(values.pop()) for name, values in found.items()}


@pytest.mark.bake
@pytest.mark.parametrize("config", CONFIGS)
def test_parameters_cells_hold_the_config_defaults(config):
    """Defaults are declared once, in the configs (the backbone and data as baked); every notebook's parameters
    cell must agree, and every field of every config must be some notebook's parameter."""
    values, names = notebook_defaults(), parameter_names(config)
    defaults = config()
    for field in defaults.__dataclass_fields__:
        name = names[field]
        assert name in values, f"{config.__name__}.{field} is no notebook's parameter ({name})"
        default = getattr(defaults, field)
        declared = tuple(values[name]) if isinstance(default, tuple) else values[name]
        assert declared == default, f"{name} = {values[name]!r} in a notebook, {default!r} in {config.__name__}"


@pytest.mark.bake
def test_every_notebook_parameter_is_held_and_checked_by_a_config():
    held = {name for config in CONFIGS for name in parameter_names(config).values()}
    assert set(notebook_defaults()) - held == {"RUN_DIR"}


@pytest.mark.bake
def test_data_dependent_choices_default_to_auto():
    values = notebook_defaults()
    assert values["POOLING"] == "auto" and values["FLIPS"] == values["AUGMENT_STRENGTH"] == "auto"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: fine_tune_config({"EPOCHS": "abc"}), "EPOCHS='abc' must be a whole number."),
        (lambda: fine_tune_config({"LEARNING_RATE": "fast"}), "LEARNING_RATE='fast' must be a number."),
        (lambda: fine_tune_config({"RESUME": "yes"}), "RESUME='yes' must be True or False."),
        (lambda: fine_tune_config({"FINE_TUNE_RESOLUTION": 64.5}), "FINE_TUNE_RESOLUTION=64.5 must be a whole number."),
        (lambda: fine_tune_config({"AUGMENT_STRENGTH": [1]}), "AUGMENT_STRENGTH=\\[1\\] must be a number or text"),
        (lambda: ProbeConfig(c_grid=("a",)), "C_GRID=\\('a',\\) must be a list of numbers"),
        (lambda: ProbeConfig(weights=3), "BACKBONE_WEIGHTS=3 must be text"),
        (lambda: DataConfig(sample="elpv", seed=True), "SEED=True must be a whole number."),
    ],
)
def test_a_value_of_the_wrong_type_names_the_parameter_and_what_it_takes(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_ints_stand_for_floats():
    assert FineTuneConfig(weight_decay=0, learning_rate=1).weight_decay == 0


def test_a_wrong_type_on_the_command_line_is_one_line_and_exit_code_2(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "{{ cookiecutter.package }}", "train", "--run-dir", str(tmp_path), "-p", "EPOCHS"]
    result = subprocess.run([*command, "abc"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: EPOCHS='abc' must be a whole number."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_recall": 0.9}, "TARGET_RECALL or TARGET_PRECISION needs TARGET_CLASS"),
        ({"target_class": "defective"}, "TARGET_CLASS='defective' needs TARGET_RECALL or TARGET_PRECISION"),
        ({"target_class": "a", "target_recall": 0.9, "target_precision": 0.9}, "not both"),
        ({"target_class": "a", "target_recall": 1.5}, "TARGET_RECALL=1.5 must be between 0 and 1"),
    ],
)
def test_a_decision_target_is_complete_and_in_range(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EvaluateConfig(**kwargs)


def test_available_cores_respects_a_container_quota(tmp_path, monkeypatch):
    import os

    from {{ cookiecutter.package }}.core import cpu

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(cpu, "CGROUP_QUOTA", quota)
    quota.write_text("max 100000\n")
    assert cpu.available_cores() == affinity
    quota.write_text("50000 100000\n")  # docker --cpus 0.5: one core, never zero
    assert cpu.available_cores() == 1
    quota.write_text(f"{affinity * 300000} 100000\n")  # a quota above the affinity changes nothing
    assert cpu.available_cores() == affinity
