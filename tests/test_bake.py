"""What a bake produces: the exact file set, no template leftovers, valid notebooks, lint."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import TEMPLATE, bake, is_git_checkout

COMMON = {
    ".dockerignore",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings",
    ".pre-commit-config.yaml",
    "CHANGELOG.md",
    "Dockerfile",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "code/01_data_acquisition_and_understanding/01_acquire_data.ipynb",
    "code/01_data_acquisition_and_understanding/02_explore_and_review.ipynb",
    "code/02_modeling/01_linear_probe.ipynb",
    "code/02_modeling/02_fine_tune.ipynb",
    "code/02_modeling/03_evaluate.ipynb",
    "code/02_modeling/04_compare_runs.ipynb",
    "code/03_deployment/01_export.ipynb",
    "code/03_deployment/02_batch_score.ipynb",
    "code/03_deployment/03_web_service.ipynb",
    "docs/data_report.md",
    "docs/exit_report.md",
    "docs/model_report.md",
    "docs/project_charter.md",
    "tests/conftest.py",
    "tests/helpers/__init__.py",
    "tests/helpers/http_load.py",
    "tests/helpers/imagenet.py",
    "tests/helpers/images.py",
    "tests/helpers/imports.py",
    "tests/helpers/browser.py",
    "tests/helpers/pipeline.py",
    "tests/helpers/manifests.py",
    "tests/helpers/models.py",
    "tests/helpers/notebooks.py",
    "tests/helpers/parallel.py",
    "tests/helpers/predictions.py",
    "tests/helpers/servers.py",
    "tests/integration/test_acquisition_pipeline.py",
    "tests/integration/test_batch_score.py",
    "tests/integration/test_checks_up_front.py",
    "tests/integration/test_incremental.py",
    "tests/integration/test_jupyterlab.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_deployment_without_torch.py",
    "tests/integration/test_gpu.py",
    "tests/integration/test_notebooks.py",
    "tests/integration/test_page.py",
    "tests/integration/test_run_all.py",
    "tests/integration/test_serve.py",
    "tests/integration/test_serve_extra.py",
    "tests/integration/test_timm_pipeline.py",
    "tests/integration/test_service_hostile.py",
    "tests/integration/test_training_runs.py",
    "tests/unit/test_augment.py",
    "tests/unit/test_backbone_reference.py",
    "tests/unit/test_class_names.py",
    "tests/unit/test_config.py",
    "tests/unit/test_conflicting_labels.py",
    "tests/unit/test_data.py",
    "tests/unit/test_download.py",
    "tests/unit/test_duplicates_splits.py",
    "tests/unit/test_ensemble.py",
    "tests/unit/test_evaluate.py",
    "tests/unit/test_explain.py",
    "tests/unit/test_export_predict.py",
    "tests/unit/test_features.py",
    "tests/unit/test_gap.py",
    "tests/unit/test_groups.py",
    "tests/unit/test_image_limits.py",
    "tests/unit/test_layers.py",
    "tests/unit/test_stage_keys.py",
    "tests/unit/test_label_review_widget.py",
    "tests/unit/test_results_browser.py",
    "tests/unit/test_model_train.py",
    "tests/unit/test_probe.py",
    "tests/unit/test_quantize.py",
    "tests/unit/test_review.py",
    "tests/unit/test_review_splits.py",
    "tests/unit/test_samples.py",
    "tests/unit/test_sources.py",
    "tests/unit/test_timm_backbones.py",
    "tests/unit/test_transfer_recipe.py",
    "tests/unit/test_template_sync.py",
    "tests/unit/test_parallel_workers.py",
    "tools/template_sync/__init__.py",
    "tools/template_sync/__main__.py",
    "tools/template_sync/changelog.py",
    "tools/template_sync/notebooks.py",
    "tools/template_sync/renders.py",
    "tools/template_sync/state.py",
    "tools/template_sync/update.py",
}
# A bake from a git checkout records its template commit (a bake from a plain folder cannot: test_hooks).
LINK = {".cruft.json"} if is_git_checkout(TEMPLATE) else set()
MODULES = set(
    """
    __init__.py __main__.py
    core/__init__.py core/batching.py core/choices.py core/class_names.py core/config.py core/cpu.py core/decision.py
    core/docs.py core/errors.py core/fingerprints.py core/formatting.py core/gap.py core/images.py core/onnx_io.py
    core/paths.py
    core/plots.py core/profiles.py core/results.py core/run_folder.py core/stage_records.py core/stages.py
    core/tables.py
    core/tracking.py
    acquisition/__init__.py acquisition/checks.py acquisition/columns.py acquisition/download.py
    acquisition/duplicates.py acquisition/groups.py
    acquisition/manifest.py acquisition/report.py acquisition/review.py acquisition/label_review.py
    acquisition/review_widget.py acquisition/samples/__init__.py
    acquisition/sources.py acquisition/splits.py acquisition/steps.py
    modeling/__init__.py modeling/augment.py modeling/backbone_base.py modeling/backbones.py modeling/calibration.py
    modeling/distributed.py
    modeling/ensemble.py modeling/evaluate.py modeling/explain.py modeling/features.py modeling/figures.py
    modeling/model.py modeling/onnx_export.py modeling/pooling.py modeling/probe.py modeling/report.py
    modeling/results_browser.py modeling/steps.py modeling/threshold.py modeling/timm_backbones.py modeling/train.py
    deployment/__init__.py deployment/export.py deployment/launcher.py deployment/predict.py deployment/quantize.py
    deployment/registry.py deployment/report.py deployment/steps.py
    deployment/scoring/__init__.py deployment/scoring/batch_score.py deployment/scoring/provenance.py
    deployment/scoring/shards.py
    deployment/service/__init__.py deployment/service/app.py deployment/service/batcher.py
    deployment/service/metrics.py deployment/service/middleware.py deployment/service/protocol.py
    deployment/service/settings.py deployment/service/page/index.html
    orchestration/__init__.py orchestration/cli.py orchestration/compare.py orchestration/lock.py
    orchestration/pipeline.py orchestration/staleness.py orchestration/status.py orchestration/sweep.py
    """.split()
)


def expected_files(package: str, samples: set[str], license_file: bool = True) -> set[str]:
    src = {f"src/{package}/{m}" for m in MODULES} | {f"src/{package}/acquisition/samples/{s}.py" for s in samples}
    return COMMON | LINK | src | ({"LICENSE"} if license_file else set())


def file_set(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


def test_default_bake_has_exactly_the_expected_files(default_project):
    assert default_project.name == "solar-cell-inspection"
    assert file_set(default_project) == expected_files("solar_cell_inspection", {"elpv"})


@pytest.mark.parametrize(("dataset", "samples"), [("elpv", {"elpv"}), ("digits", {"digits"}), ("folder", set())])
def test_each_dataset_keeps_only_its_sample(tmp_path, dataset, samples):
    project = bake(tmp_path, project=f"probe-{dataset}", dataset=dataset)
    assert file_set(project) == expected_files(f"probe_{dataset}", samples)
    dependencies = (project / "pyproject.toml").read_text()
    assert ("elpv-dataset" in dependencies) == (dataset == "elpv")


def test_proprietary_license_drops_the_license_file(tmp_path):
    project = bake(tmp_path, license="Proprietary")
    assert "LICENSE" not in file_set(project)
    assert "license =" not in (project / "pyproject.toml").read_text()


def test_names_flow_from_the_project_name(tmp_path):
    project = bake(tmp_path, project_name="Crack Finder")
    assert project.name == "crack-finder"
    assert (project / "src" / "crack_finder" / "orchestration" / "cli.py").is_file()
    assert 'name = "crack-finder"' in (project / "pyproject.toml").read_text()


def test_no_template_syntax_is_left(default_project):
    leftovers = re.compile(r"\{\{|\{%|cookiecutter\.")
    for path in default_project.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            match = leftovers.search(text)
            assert match is None, f"{path}: {text[max(0, match.start() - 60) : match.end() + 60]!r}"


def test_every_notebook_has_one_parameters_cell_and_no_outputs(default_project):
    notebooks = sorted((default_project / "code").rglob("*.ipynb"))
    assert len(notebooks) == 9
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path
        assert cells[0]["cell_type"] == "markdown", f"{path}: starts without an introduction"
        assert cells[tagged[0] - 1]["cell_type"] == "code", f"{path}: parameters cell must follow the imports"
        for statement in ast.parse("".join(cells[tagged[0]]["source"])).body:
            assert isinstance(statement, ast.Assign), f"{path}: only assignments in the parameters cell"
            assert statement.targets[0].id.isupper(), f"{path}: parameter names are UPPER_CASE"
            ast.literal_eval(statement.value)  # plain values, no calls
        for cell in cells:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path


def test_papermill_reads_every_parameter(default_project):
    import papermill

    for path in sorted((default_project / "code").rglob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        source = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
        assigned = re.findall(r"^([A-Z_][A-Z0-9_]*) =", source, flags=re.MULTILINE)
        assert list(papermill.inspect_notebook(str(path))) == assigned, path


def assert_ruff_passes(cwd: Path, *paths: str) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check"], ["format", "--check"]):  # no cache: the bake other tests read stays as baked
        result = subprocess.run([str(ruff), *args, "--no-cache", *paths], cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes_on_the_baked_project(default_project):
    assert_ruff_passes(default_project, ".")


def test_ruff_passes_on_the_templates_own_code():
    assert_ruff_passes(TEMPLATE, "hooks", "tests", "bench")


@pytest.mark.parametrize("backbone", ["efficientnet_lite2", "timm:convnext_tiny.fb_in22k_ft_in1k"])
def test_a_non_default_backbone_is_the_notebooks_default(tmp_path, backbone):
    project = bake(tmp_path, backbone=backbone)
    for notebook in ("02_modeling/01_linear_probe.ipynb", "02_modeling/02_fine_tune.ipynb"):
        assert f'BACKBONE = \\"{backbone}\\"' in (project / "code" / notebook).read_text()
