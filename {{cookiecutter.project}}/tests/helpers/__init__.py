"""Plain helpers the tests import (``from helpers.images import stripes``; pytest puts ``tests`` on the path):
images made on the fly (images), the tiny model (models), stage 1 on a source (manifests), a real MLflow server
(servers), reference ImageNet classifiers (imagenet), the package's import graph (imports), one prediction the
plain way (predictions), and the service's load generator, run as a script (http_load)."""
