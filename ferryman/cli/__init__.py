"""The ``ferryman`` command line (the console script runs :func:`ferryman.cli.main.main`)."""
