"""The harness modules' fixtures (`apiserver`, `containers`) for every test here, without importing them by name."""

pytest_plugins = ("apiserver_harness", "containers_harness")
