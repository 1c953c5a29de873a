/* tlsbio.h - ciphertext queues shared by an OpenSSL BIO and Python (tlsbio.c). */
#ifndef BCL_TLSBIO_H
#define BCL_TLSBIO_H

#include "core.h"

/* Add _tls_bios and the TLSBuffer type to the module. 0, or -1 with an
 * exception (an interpreter without ssl, or an OpenSSL boucle cannot reach,
 * is not an error: _tls_bios then answers None). */
int bcl_tlsbio_init(PyObject *module);

/* The readable bytes of a TLSBuffer: *p and its length; -1 (no exception)
 * when obj is not a TLSBuffer. */
Py_ssize_t bcl_tlsbio_peek(PyObject *obj, const char **p);
/* Drop the first n (<= what bcl_tlsbio_peek gave) readable bytes. */
void bcl_tlsbio_consume(PyObject *obj, Py_ssize_t n);

#endif
