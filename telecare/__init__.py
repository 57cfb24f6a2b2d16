"""The composition root: the ``telecare`` command and the demo.

It stands above the packages it puts together (``gateway``, ``api``, ``sensors_sim``, ``analytics``), and none of
them imports it: the import contract in pyproject.toml (``lint-imports`` in ``.ci/test``) keeps it so.
"""
