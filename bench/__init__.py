"""Benchmarks of hoststate against the local control plane: `make bench`."""
