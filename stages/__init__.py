"""One module per DVC stage; each is run as ``python -m stages.<name>``."""
