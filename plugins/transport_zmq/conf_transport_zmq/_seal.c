/* One CURVE MESSAGE frame sealed, or opened, in one call, for zmq:// links (libsodium).
 *
 * seal_frame(key, nonce, plain, prefix) -> bytes: the whole ZMTP frame a CurveZMQ peer sends (RFC 26,
 * RFC 37): its flags and size, "\x07MESSAGE", the 8-byte short nonce, then crypto_box_easy_afternm(plain)
 * under `prefix` (16 bytes: "CurveZMQMESSAGES" from a server, "CurveZMQMESSAGEC" from a client) + nonce
 * with the connection's precomputed `key` (32 bytes). `plain` is the frame's flags byte and its body.
 * Byte for byte what conf_transport_zmq.curvezmq.CurveSession.seal_in_python builds
 * (tests/transports/test_zmtp_server.py), in one allocation and no copy of the payload but the cipher's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sodium.h>
#include <string.h>

#define HEADER_LONG 9
#define NAME "\x07MESSAGE"
#define NAME_LEN 8
#define NONCE_LEN 8

static PyObject *seal_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) || !PyBytes_Check(args[2]) ||
        !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "seal_frame(key: bytes, nonce: int, plain: bytes, prefix: bytes)");
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) != crypto_box_BEFORENMBYTES || PyBytes_GET_SIZE(args[3]) != 16) {
        PyErr_SetString(PyExc_ValueError, "the key must be 32 bytes and the prefix 16");
        return NULL;
    }
    unsigned long long nonce = PyLong_AsUnsignedLongLong(args[1]);
    if (nonce == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    const unsigned char *key = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *plain = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    Py_ssize_t plain_len = PyBytes_GET_SIZE(args[2]);
    Py_ssize_t body = NAME_LEN + NONCE_LEN + crypto_box_MACBYTES + plain_len;
    Py_ssize_t header = body <= 255 ? 2 : HEADER_LONG;
    PyObject *out = PyBytes_FromStringAndSize(NULL, header + body);
    if (out == NULL) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    if (header == 2) {
        p[0] = 0;
        p[1] = (unsigned char)body;
    } else {
        p[0] = 0x02; /* LONG */
        for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)((unsigned long long)body >> (56 - 8 * i));
    }
    p += header;
    memcpy(p, NAME, NAME_LEN);
    unsigned char full_nonce[crypto_box_NONCEBYTES];
    memcpy(full_nonce, PyBytes_AS_STRING(args[3]), 16);
    for (int i = 0; i < 8; i++) full_nonce[16 + i] = (unsigned char)(nonce >> (56 - 8 * i));
    memcpy(p + NAME_LEN, full_nonce + 16, NONCE_LEN);
    crypto_box_easy_afternm(p + NAME_LEN + NONCE_LEN, plain, (unsigned long long)plain_len, full_nonce, key);
    return out;
}

/* open_frame(key, prefix, body) -> (flags, payload) | None: the body of a MESSAGE frame from the peer
 * (b"\x07MESSAGE", the 8-byte nonce, the box) opened under `prefix` + nonce with `key`; its flags as a
 * ZMTP frame's (MORE 0x01, COMMAND 0x04) and its payload. None if the box does not open. The caller
 * checks the name and that the nonce grows. */
#define MAX_PLAIN (1 << 17)
static unsigned char opened[MAX_PLAIN];

static PyObject *open_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "open_frame(key: bytes, prefix: bytes, body: bytes)");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[2]);
    Py_ssize_t header = NAME_LEN + NONCE_LEN;
    if (PyBytes_GET_SIZE(args[0]) != crypto_box_BEFORENMBYTES || PyBytes_GET_SIZE(args[1]) != 16 ||
        size < header + (Py_ssize_t)crypto_box_MACBYTES + 1 ||
        size - header - (Py_ssize_t)crypto_box_MACBYTES > MAX_PLAIN) {
        PyErr_SetString(PyExc_ValueError, "a 32-byte key, a 16-byte prefix, a MESSAGE body of bounded size");
        return NULL;
    }
    const unsigned char *body = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    unsigned char nonce[crypto_box_NONCEBYTES];
    memcpy(nonce, PyBytes_AS_STRING(args[1]), 16);
    memcpy(nonce + 16, body + NAME_LEN, NONCE_LEN);
    unsigned long long box = (unsigned long long)(size - header);
    if (crypto_box_open_easy_afternm(opened, body + header, box, nonce,
                                     (const unsigned char *)PyBytes_AS_STRING(args[0])) != 0)
        Py_RETURN_NONE;
    Py_ssize_t plain = (Py_ssize_t)box - crypto_box_MACBYTES;
    int flags = (opened[0] & 0x01) | ((opened[0] & 0x02) << 1);
    PyObject *payload = PyBytes_FromStringAndSize((const char *)opened + 1, plain - 1);
    if (payload == NULL) return NULL;
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, PyLong_FromLong(flags));
    PyTuple_SET_ITEM(result, 1, payload);
    return result;
}

static PyMethodDef methods[] = {
    {"open_frame", (PyCFunction)(void (*)(void))open_frame, METH_FASTCALL,
     "open_frame(key, prefix, body) -> (flags, payload) of a CURVE MESSAGE frame, or None"},
    {"seal_frame", (PyCFunction)(void (*)(void))seal_frame, METH_FASTCALL,
     "seal_frame(key, nonce, plain, prefix) -> one CURVE MESSAGE frame, whole"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_seal", NULL, -1, methods};

PyMODINIT_FUNC PyInit__seal(void) {
    if (sodium_init() < 0) {
        PyErr_SetString(PyExc_ImportError, "libsodium failed to initialise");
        return NULL;
    }
    return PyModule_Create(&module);
}
