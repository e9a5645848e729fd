"""The wire: the generated protobuf, the codec of values, the orchestrator's frames and entries.

Layer 2: pure translation between bytes and Python data, no socket and no
thread. It may import ``mrclient.errors`` and ``mrclient._support``.
"""
