"""Small things every layer uses: argument checks, the close thread, hints, install hints, tables.

Layer 1, just above ``mrclient.errors`` (layer 0): it may import ``mrclient.errors`` and
nothing else of mrclient, so every layer above can use it.
"""
