"""Examples of coordinators built on mrclient; not part of the installed package.

Run them from a clone: ``python -m examples.coordinator --help``.
"""
