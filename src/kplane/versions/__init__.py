"""Kubernetes version data: the version profile, the built-in resource table and built-in schemas."""
