"""Socket operations of boucle.Loop (sock_* methods, getaddrinfo/getnameinfo)."""


class SocketMixin:
    __slots__ = ()
