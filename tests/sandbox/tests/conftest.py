"""The harness modules' fixtures (`containers`; `background`, `echo_sandbox`) for every test here, without
importing them by name."""

pytest_plugins = ("containers_harness", "cluster_harness")
