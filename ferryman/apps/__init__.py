"""The applications shipped with ferryman, each loaded by its short name (``storage``...)."""
