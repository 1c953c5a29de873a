/* module.c - boucle._core: module init, the cached asyncio objects
 * (bcl_state), the fork hook, and the errno -> OSError conversion. */
#include "core.h"
#include "handle.h"
#include "loop.h"
#include "stream.h"
#include "sock.h"
#include "dgram.h"
#include "sslpump.h"
#include "unixpath.h"
#include "tlsbio.h"

#include <pthread.h>

bcl_state_t bcl_state;
volatile unsigned long bcl_fork_generation;

static void
fork_child_hook(void)
{
    bcl_fork_generation++;
}

PyObject *
bcl_raise_errno(int neg_errno)
{
    errno = -neg_errno;
    return PyErr_SetFromErrno(PyExc_OSError);
}

PyObject *
bcl_source_traceback(void)
{
    PyFrameObject *f = PyEval_GetFrame();
    if (f == NULL)
        return NULL;
    return PyObject_CallOneArg(bcl_state.extract_stack, (PyObject *)f);
}

/* Does asyncio's create_task(coro), with a task factory set, only return
 * factory(loop, coro)? Asked of its code rather than of the version number:
 * 3.10-3.12 then call tasks._set_task_name(task, None), which does nothing;
 * 3.13.3+ pass their keyword arguments on (none here); 3.13.0-3.13.2 call
 * task.set_name(name) even when name is None (the task is named "None"). */
static int
state_read_create_task(void)
{
    PyObject *code = PyObject_GetAttrString(bcl_state.base_create_task, "__code__");
    PyObject *names = code ? PyObject_GetAttrString(code, "co_names") : NULL;
    Py_XDECREF(code);
    if (names == NULL)
        return -1;
    PyObject *set_name = PyUnicode_FromString("set_name");
    int has = set_name ? PySequence_Contains(names, set_name) : -1;
    Py_XDECREF(set_name);
    Py_DECREF(names);
    if (has < 0)
        return -1;
    bcl_state.factory_call_is_all = !has;
    return 0;
}

static int
state_init(void)
{
    PyObject *mod = PyImport_ImportModule("asyncio");
    if (mod == NULL)
        return -1;
    bcl_state.future_type = PyObject_GetAttrString(mod, "Future");
    bcl_state.task_type = PyObject_GetAttrString(mod, "Task");
    Py_DECREF(mod);
    if (bcl_state.future_type == NULL || bcl_state.task_type == NULL)
        return -1;
    mod = PyImport_ImportModule("asyncio.base_events");
    if (mod == NULL)
        return -1;
    PyObject *base = PyObject_GetAttrString(mod, "BaseEventLoop");
    Py_DECREF(mod);
    if (base == NULL)
        return -1;
    bcl_state.base_create_task = PyObject_GetAttrString(base, "create_task");
    Py_DECREF(base);
    if (bcl_state.base_create_task == NULL)
        return -1;
    if (state_read_create_task() < 0)
        return -1;
    bcl_state.str_context = PyUnicode_InternFromString("context");
    bcl_state.str_name = PyUnicode_InternFromString("name");
    if (bcl_state.str_context == NULL || bcl_state.str_name == NULL)
        return -1;
    mod = PyImport_ImportModule("asyncio.format_helpers");
    if (mod == NULL)
        return -1;
    bcl_state.format_cb_source = PyObject_GetAttrString(mod, "_format_callback_source");
    bcl_state.extract_stack = PyObject_GetAttrString(mod, "extract_stack");
    Py_DECREF(mod);
    if (bcl_state.format_cb_source == NULL || bcl_state.extract_stack == NULL)
        return -1;
    bcl_state.str_loop = PyUnicode_InternFromString("loop");
    if (bcl_state.str_loop == NULL)
        return -1;
    bcl_state.kwnames_loop = PyTuple_Pack(1, bcl_state.str_loop);
    bcl_state.empty_tuple = PyTuple_New(0);
    if (bcl_state.kwnames_loop == NULL || bcl_state.empty_tuple == NULL)
        return -1;
    /* 3.13 shows a callback's arguments only in debug mode (debug=) */
    PyObject *code = PyObject_GetAttrString(bcl_state.format_cb_source, "__code__");
    PyObject *names = code ? PyObject_GetAttrString(code, "co_varnames") : NULL;
    Py_XDECREF(code);
    if (names == NULL)
        return -1;
    PyObject *dbg = PyUnicode_FromString("debug");
    int has = dbg ? PySequence_Contains(names, dbg) : -1;
    Py_DECREF(names);
    if (has < 0) {
        Py_XDECREF(dbg);
        return -1;
    }
    if (has) {
        bcl_state.kwnames_debug = PyTuple_Pack(1, dbg);
        if (bcl_state.kwnames_debug == NULL) {
            Py_DECREF(dbg);
            return -1;
        }
    }
    Py_DECREF(dbg);
    return 0;
}

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "boucle._core",
    .m_doc = "C core of boucle: loop, handles, timers, poller.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    static int fork_hook_installed;
    if (bcl_state.future_type == NULL && state_init() < 0)
        return NULL;
    if (!fork_hook_installed) {
        if (pthread_atfork(NULL, NULL, fork_child_hook) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return NULL;
        }
        fork_hook_installed = 1;
    }
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    if (bcl_handle_init_types(m) < 0 || bcl_loop_init_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (bcl_sock_init_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (bcl_stream_init_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (bcl_dgram_init_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (bcl_sslpump_init(m) < 0 || bcl_tlsbio_init(m) < 0 || bcl_unixpath_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
