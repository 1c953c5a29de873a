/* dgram.h - the datagram transport (UDP and AF_UNIX datagram sockets),
 * boucle._core.DatagramTransport; see dgram.c. */
#ifndef BCL_DGRAM_H
#define BCL_DGRAM_H

#include "core.h"

/* Create the DatagramTransport type (it derives from asyncio's transport
 * classes, so asyncio must be importable) and add it to the module. */
int bcl_dgram_init_type(PyObject *module);

#endif
