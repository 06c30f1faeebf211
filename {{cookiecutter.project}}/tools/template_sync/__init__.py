"""Keep the project up to date with the template it was baked from.

The bake recorded the template, its commit and the answers in ``.cruft.json`` (cruft's format, so ``cruft check``,
``cruft diff`` and ``cruft update`` work too). ``python -m template_sync check | diff | update`` (``make
template-check``, ``template-diff``, ``template-update``) is a thin layer over cruft: cruft clones and re-bakes
the template with the recorded answers; this package adds what cruft's text patch cannot do safely: notebooks
merged cell by cell, files the template deleted, a refusal that names uncommitted files, and the CHANGELOG
entries between the two commits. It is a development tool, outside the package and its layers.
"""
