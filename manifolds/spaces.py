"""State spaces for flows: how a tangent vector moves a point (Euler / Heun updates) and a distance.

* :class:`Euclidean` - R^d (any event shape): x + h v, |x - y|.
* :class:`SO3` - rotations ``[..., 3, 3]`` with body-frame tangents ``[..., 3]``: R Exp(h v), geodesic angle.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from manifolds import so3

__all__ = ["Space", "Euclidean", "SO3"]


class Space:
    """A state space on which flows move: ``exp_step(x, v, h)`` follows a tangent vector for time h."""

    #: trailing dims of one element (0 for a real coordinate, 2 for a rotation matrix)
    element_ndim: int = 0

    def exp_step(self, x: Tensor, v: Tensor, h: Tensor | float) -> Tensor:
        raise NotImplementedError

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-element distance, shape ``x.shape[: x.ndim - element_ndim]``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Euclidean(Space):
    element_ndim: int = 0

    def exp_step(self, x: Tensor, v: Tensor, h: Tensor | float) -> Tensor:
        return x + h * v

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return (x - y).abs()


@dataclass(frozen=True)
class SO3(Space):
    element_ndim: int = 2

    def exp_step(self, x: Tensor, v: Tensor, h: Tensor | float) -> Tensor:
        # x [..., 3, 3], v [..., 3]: x Exp(h v)
        return so3.compose_exp(x, h * v)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return so3.rotation_angle_between(x, y)
