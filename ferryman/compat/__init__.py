"""Faces of the APIs ferryman grew from, over ferryman's own, for code written against them.

Each module takes one library's names and shapes (``ferryman.compat.aiorp``...), so a user
coming from it changes imports and nothing else; ferryman's main API stays as it is.
"""
