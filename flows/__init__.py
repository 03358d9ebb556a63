"""Prefect flows and deployments that run the DVC pipeline on work pools (see prefect.yaml)."""
