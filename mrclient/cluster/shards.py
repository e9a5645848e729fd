"""Which shard of a crunch a model belongs to: rendezvous hashing of its model id.

A crunch too big for one process is split between K coordinators (processes
on one machine, or replicas on K machines), each owning the models of one
shard. Nothing sits between them: each computes the same rule,
``shard_of(model_id, count)``, and owns the models whose shard is its index,
as Prometheus servers split their scrape targets by ``hashmod``. The rule must
therefore answer the same in every process, on every machine and in every
Python version. It reads a stable digest, never ``hash()`` (salted per
process for strings).

Rendezvous (highest random weight) hashing: shard ``i`` weighs a model at
the first 8 bytes of ``blake2b(f"{i}:{model_id}".encode("utf-8"))`` read as
a big-endian unsigned integer, and the model belongs to the heaviest shard
(the lowest index on a tie). From K to K+1 shards a model moves only when the
new shard K outweighs every old one, which is about 1/(K+1) of the models,
and it moves to the new shard; the others stay. (``crc32 % count`` would move
about K/(K+1) of them.) A lone surrogate in a model id, which JSON allows, is
encoded as such (``surrogatepass``) rather than refused.

The rule reads the model id only, so a redeploy, a move or a restart (a new
deployment, a new address) keeps a model in its shard. Pure: no IO, no state;
tests/data/shard_golden.json pins its answers, checked in every supported
Python version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .._support.validation import check_positive_int
from ..errors import InvalidCoordinatorUsageError

__all__ = ["Shard", "shard_of"]


def _weight(index: int, model_id: str) -> int:
    digest = hashlib.blake2b(f"{index}:{model_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _heaviest(model_id: str, count: int) -> int:
    """The shard of ``model_id`` among ``count``, arguments already checked."""
    if count == 1:
        return 0
    best, best_weight = 0, -1
    for index in range(count):
        weight = _weight(index, model_id)
        if weight > best_weight:  # strictly: the lowest index wins a tie
            best, best_weight = index, weight
    return best


def shard_of(model_id: str, count: int) -> int:
    """The shard (0 to ``count - 1``) that owns ``model_id`` when a crunch is split in ``count`` shards.

    The same answer in every process, machine and Python version (see the
    module's docstring for the exact rule); going from ``count`` to
    ``count + 1`` shards moves about ``1 / (count + 1)`` of the models, all to
    the new shard. A runner made with ``shard=(index, count)`` owns the models
    for which this is ``index``. Raises ``InvalidCoordinatorUsageError`` for a
    ``model_id`` that is not a string or a ``count`` that is not an integer of
    1 or more.
    """
    if not isinstance(model_id, str):
        raise InvalidCoordinatorUsageError(f"model_id must be a string (a model's id), got {model_id!r}")
    return _heaviest(model_id, check_positive_int("count", count))


@dataclass(frozen=True)
class Shard:
    """The models one runner owns: those whose ``shard_of(model_id, count)`` is ``index``.

    Made from a checked ``shard=(index, count)``; printed as ``shard 1/3``
    (indices start at 0, like a StatefulSet's ordinals).
    """

    index: int
    count: int

    def owns(self, model_id: str) -> bool:
        """Whether the model of ``model_id`` is this shard's."""
        return _heaviest(model_id, self.count) == self.index

    def __str__(self) -> str:
        return f"shard {self.index}/{self.count}"
