"""What the tests share: tiny real images, a real MLflow server, a baked copy of the package to break on purpose."""
