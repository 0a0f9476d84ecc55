"""llmd-sandbox: a Kubernetes cluster with llm-d deployed, simulated on loopback addresses."""
