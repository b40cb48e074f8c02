"""Benchmarks: latency of exported graphs and of the trexport custom ops, measured side by side."""
