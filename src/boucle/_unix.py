"""Unix sockets and datagram endpoints of boucle.Loop (Python side)."""


class UnixMixin:
    __slots__ = ()
