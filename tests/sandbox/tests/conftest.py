"""The harness module's fixture (`containers`) for every test here, without importing them by name."""

pytest_plugins = ("containers_harness",)
