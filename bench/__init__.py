"""The benchmark harness (``python -m bench.run``): the gateway against nginx and the sandbox
upstream itself, measured with wrk. Not part of the shipped package; see bench/README.md."""
