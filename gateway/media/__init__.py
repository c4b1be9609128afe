"""Checks on the media the gateway stores: what a file is (PyAV probe) and whether it plays."""
