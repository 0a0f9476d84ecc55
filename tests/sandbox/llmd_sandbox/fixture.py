"""pytest fixtures for the sandbox (written with the runtime)."""
