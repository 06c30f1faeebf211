"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}

Read it in the order of the notebooks: ``acquisition`` (stage 1), ``modeling`` (stage 2), ``deployment``
(stage 3); each stage's ``steps`` module holds what its notebooks call. ``core`` is shared by all: settings,
the run folder, image loading, ONNX Runtime, plots, the pipeline and the command line.
"""

__version__ = "0.1.0"
PROJECT_NAME = "{{ cookiecutter.project_name }}"
