/* sslpump.h - the TLS data-path helpers of sslpump.c. */
#ifndef BCL_SSLPUMP_H
#define BCL_SSLPUMP_H

#include "core.h"

/* Add _ssl_read and _ssl_write to the module (nothing when the interpreter
 * has no ssl module). 0 on success, -1 with an exception. */
int bcl_sslpump_init(PyObject *module);

#endif
