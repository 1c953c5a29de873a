/* sock.h - the loop's socket operations (sock_recv, sock_sendall, ...):
 * module-level functions used by boucle._sockets.SocketMixin, and the
 * SockOp type (a pending operation). See sock.c. */
#ifndef BCL_SOCK_H
#define BCL_SOCK_H

#include "core.h"

/* Register the SockOp type and the sock_* functions in the module. */
int bcl_sock_init_type(PyObject *module);

#endif
