"""Embedrank's dev and operator tooling: ``make serve`` (``local``), its local AWS (``localaws``), the admin CLI
(``cli``), provisioning and seed loading. Installed by ``make`` and ``pip install .``; never copied into the Lambda
layer, and nothing in the layer imports it."""
