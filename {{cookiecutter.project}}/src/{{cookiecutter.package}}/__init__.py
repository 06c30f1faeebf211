"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}

The package is in layers, and an import only points down (a contract in pyproject.toml, checked by the tests):

``core``           the bottom: settings and their choices, result schemas, the run folder, images, class names,
                   tracking, ONNX Runtime; it imports no stage and no torch.
``acquisition``    stage 1 (the first two notebooks): sources, checks, duplicates, subject groups, splits, label
                   review.
``modeling``       stage 2: backbones, features, the linear probe, fine-tuning, calibration, evaluation.
``deployment``     stage 3: export, then scoring and the service, which run on ONNX Runtime without torch.
``orchestration``  the top: the command line, the pipeline, sweeps, the comparison of runs.

Read it in that order; each stage's ``steps`` module holds what its notebooks call.
"""

__version__ = "0.1.0"
PROJECT_NAME = "{{ cookiecutter.project_name }}"
