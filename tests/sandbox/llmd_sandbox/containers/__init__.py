"""Programs that run as the containers of sandbox pods (see ARCHITECTURE.md)."""
