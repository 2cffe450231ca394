"""JSON round trip of network config dataclasses whose sequence fields are tuples.

Model files store a generator's config as JSON (:func:`fastem.nn.model.save_model`), where
tuples become lists; :class:`TupleFieldsConfig` is the one ``to_dict`` / ``from_dict`` pair of
the U-Net (``pools``) and HRNet (``modules``) configs.
"""

from __future__ import annotations

from dataclasses import asdict

__all__ = ["TupleFieldsConfig"]


class TupleFieldsConfig:
    """Mixin for a dataclass: ``to_dict`` writes the fields named in ``TUPLE_FIELDS`` as lists,
    ``from_dict`` turns them back into tuples (every other field passes through)."""

    TUPLE_FIELDS: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in self.TUPLE_FIELDS:
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**{k: (tuple(v) if k in cls.TUPLE_FIELDS else v) for k, v in d.items()})
