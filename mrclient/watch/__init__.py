"""``mrclient watch``: the crunch as the orchestrator announces it, live in a terminal.

Layer 7, beside ``view``: the watcher and its board of announcements, their
display, and the opt-in health probe. It may import every layer below, up to
``concurrent`` (its ``--call`` runs a coordinator of its own).
"""
