"""The load harness: ``python -m benchmarks.load`` (see ``__main__`` and the README's
"Load harness" section)."""
