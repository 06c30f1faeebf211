"""The top layer: what ties the stages together. The command line, the pipeline that runs the notebooks in
order, sweeps over a stage's settings and the comparison of runs. Nothing below imports from here."""
