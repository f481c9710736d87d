/* Many UDP datagrams in one system call (sendmmsg), for the rtp:// server's fan-out.
 *
 * send_many(fd, data, stride, lengths, addresses) sends datagram i to addresses[i] (a packed sockaddr,
 * as bytes). With stride 0 every datagram is the whole of `data`; otherwise datagram i is the lengths[i]
 * bytes of `data` at i * stride, and an entry below 0 is skipped. A datagram the kernel does not take
 * (a full socket buffer: EAGAIN; an error the network reported) is dropped, never waited for, and its
 * lengths[i] set to -2. Returns how many were sent.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CHUNK 64
#define FAILED (-2)

static PyObject *send_many(PyObject *module, PyObject *args) {
    (void)module;
    int fd;
    Py_buffer data, lengths;
    Py_ssize_t stride;
    PyObject *addresses;
    if (!PyArg_ParseTuple(args, "iy*nw*O!", &fd, &data, &stride, &lengths, &PyTuple_Type, &addresses))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(addresses), sent = 0;
    if (lengths.itemsize != 4 || lengths.len / 4 < count || stride < 0 ||
        (stride > 0 && data.len < (count - 1) * stride)) {
        PyErr_SetString(PyExc_ValueError, "lengths or data too short for this batch");
        goto end;
    }
    int32_t *len = (int32_t *)lengths.buf;
    struct mmsghdr msgs[CHUNK];
    struct iovec iovs[CHUNK];
    Py_ssize_t which[CHUNK];
    Py_ssize_t i = 0;
    while (i < count) {
        int k = 0;
        for (; i < count && k < CHUNK; i++) {
            PyObject *address = PyTuple_GET_ITEM(addresses, i);
            if (!PyBytes_Check(address)) {
                PyErr_SetString(PyExc_TypeError, "addresses must be packed sockaddrs (bytes)");
                goto end;
            }
            if (stride == 0) {
                iovs[k].iov_base = data.buf;
                iovs[k].iov_len = (size_t)data.len;
                len[i] = (int32_t)data.len;
            } else {
                if (len[i] < 0) continue;
                if (len[i] > stride || i * stride + len[i] > data.len) {
                    PyErr_SetString(PyExc_ValueError, "a datagram runs past its slot");
                    goto end;
                }
                iovs[k].iov_base = (char *)data.buf + i * stride;
                iovs[k].iov_len = (size_t)len[i];
            }
            memset(&msgs[k].msg_hdr, 0, sizeof(struct msghdr));
            msgs[k].msg_hdr.msg_name = PyBytes_AS_STRING(address);
            msgs[k].msg_hdr.msg_namelen = (socklen_t)PyBytes_GET_SIZE(address);
            msgs[k].msg_hdr.msg_iov = &iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            which[k] = i;
            k++;
        }
        int done = 0;
        while (done < k) {
            int r = sendmmsg(fd, msgs + done, (unsigned int)(k - done), MSG_DONTWAIT);
            if (r > 0) {
                done += r;
                sent += r;
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else {  /* this one failed (EAGAIN, an error the network reported): drop it, go on */
                len[which[done]] = FAILED;
                done++;
            }
        }
    }
    result = PyLong_FromSsize_t(sent);
end:
    PyBuffer_Release(&data);
    PyBuffer_Release(&lengths);
    return result;
}

static PyMethodDef methods[] = {
    {"send_many", send_many, METH_VARARGS,
     "send_many(fd, data, stride, lengths, addresses) -> int: datagrams to many addresses in one sendmmsg."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_sendmany",
                                       "Batched UDP sends (sendmmsg) for the rtp:// server.", -1, methods,
                                       NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__sendmany(void) { return PyModule_Create(&moduledef); }
