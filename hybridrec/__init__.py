"""hybridrec: the command line and the Python client for the gateway."""
