"""Stream transports, servers and pipes of boucle.Loop (Python side)."""


class TransportMixin:
    __slots__ = ()
