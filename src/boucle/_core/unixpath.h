/* unixpath.h - file-system helpers for Unix socket servers (unixpath.c). */
#ifndef BCL_UNIXPATH_H
#define BCL_UNIXPATH_H

#include "core.h"

/* Add _unix_inode and _unix_unlink_if to the module. 0, or -1 with an
 * exception. */
int bcl_unixpath_init(PyObject *module);

#endif
