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

/* Is `name` in the code object tuple `field` (co_names, co_varnames) of the
 * Python function `func`? 1 or 0, or -1 with an exception. boucle asks
 * asyncio's code what it does rather than trusting version numbers. */
static int
code_mentions(PyObject *func, const char *field, const char *name)
{
    PyObject *code = PyObject_GetAttrString(func, "__code__");
    PyObject *names = code ? PyObject_GetAttrString(code, field) : NULL;
    Py_XDECREF(code);
    if (names == NULL)
        return -1;
    PyObject *str = PyUnicode_FromString(name);
    int has = str ? PySequence_Contains(names, str) : -1;
    Py_XDECREF(str);
    Py_DECREF(names);
    return has;
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
    /* Does create_task(coro), with a task factory set, only return
     * factory(loop, coro)? 3.10-3.12 then call tasks._set_task_name(task,
     * None), which does nothing; 3.13.3+ pass their keyword arguments on
     * (none here); 3.13.0-3.13.2 call task.set_name(None) (naming it "None"). */
    int has = code_mentions(bcl_state.base_create_task, "co_names", "set_name");
    if (has < 0)
        return -1;
    bcl_state.factory_call_is_all = !has;
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
    has = code_mentions(bcl_state.format_cb_source, "co_varnames", "debug");
    if (has < 0)
        return -1;
    if (has) {
        bcl_state.kwnames_debug = Py_BuildValue("(s)", "debug");
        if (bcl_state.kwnames_debug == NULL)
            return -1;
    }
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
