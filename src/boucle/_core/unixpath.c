/* unixpath.c - the file-system side of create_unix_server (boucle/_unix.py).
 *
 * asyncio's create_unix_server removes a stale socket file before binding
 * and (3.13+, cleanup_socket) the server's own file when it stops, checking
 * the inode it noted at creation. Those stat()/unlink() calls are made here,
 * with the GIL released, rather than through os.stat/os.remove: tools that
 * report blocking calls made on an event loop thread (blockbuster, used by
 * aiohttp's test suite and others) allow asyncio's own unix_events frames,
 * and uvloop's Cython loop makes no Python-level call, but boucle's Python
 * layer would be reported for the same quick local calls.
 *
 *   _unix_inode(path) -> int, or None when path does not exist
 *   _unix_unlink_if(path, inode) -> bool: remove path if it is a socket
 *       (inode None) or still has that inode; False when it is not there
 *
 * Other OSErrors are raised with errno and the path, as os.stat does.
 */
#include "unixpath.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* stat(path) without the GIL: 0, or an errno. */
static int
unixpath_stat(const char *path, struct stat *st)
{
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = stat(path, st);
    Py_END_ALLOW_THREADS
    return r < 0 ? errno : 0;
}

static PyObject *
unixpath_error(int err, PyObject *path)
{
    errno = err;
    return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
}

static PyObject *
unixpath_inode(PyObject *mod, PyObject *arg)
{
    PyObject *bytes = NULL, *result = NULL;
    struct stat st;
    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    int err = unixpath_stat(PyBytes_AS_STRING(bytes), &st);
    if (err == ENOENT)
        result = Py_NewRef(Py_None);
    else if (err != 0)
        unixpath_error(err, arg);
    else
        result = PyLong_FromUnsignedLongLong((unsigned long long)st.st_ino);
    Py_DECREF(bytes);
    return result;
}

static PyObject *
unixpath_unlink_if(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_unix_unlink_if(path, inode)");
        return NULL;
    }
    PyObject *bytes = NULL, *result = NULL;
    unsigned long long want = 0;
    int by_inode = args[1] != Py_None;
    if (by_inode) {
        want = PyLong_AsUnsignedLongLong(args[1]);
        if (want == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
    }
    if (!PyUnicode_FSConverter(args[0], &bytes))
        return NULL;
    const char *path = PyBytes_AS_STRING(bytes);
    struct stat st;
    int err = unixpath_stat(path, &st);
    if (err == ENOENT) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    if (err != 0) {
        unixpath_error(err, args[0]);
        goto done;
    }
    if (by_inode ? (unsigned long long)st.st_ino != want : !S_ISSOCK(st.st_mode)) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = unlink(path);
    Py_END_ALLOW_THREADS
    if (r < 0 && errno != ENOENT)
        unixpath_error(errno, args[0]);
    else
        result = PyBool_FromLong(r == 0);
done:
    Py_DECREF(bytes);
    return result;
}

static PyMethodDef unixpath_functions[] = {
    {"_unix_inode", unixpath_inode, METH_O,
     "_unix_inode(path) -> inode number, or None when path does not exist"},
    {"_unix_unlink_if", (PyCFunction)(void (*)(void))unixpath_unlink_if, METH_FASTCALL,
     "_unix_unlink_if(path, inode) -> bool: unlink path if it is a socket (inode None) "
     "or has that inode"},
    {NULL, NULL, 0, NULL},
};

int
bcl_unixpath_init(PyObject *module)
{
    return PyModule_AddFunctions(module, unixpath_functions);
}
