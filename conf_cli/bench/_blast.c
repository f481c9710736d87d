/* conf bench's compiled media loop (``--generator compiled``, rtp:// only): the clients of a worker process
 * have joined in Python (control link, SRTP keys, STUN latch); this loop then owns their UDP sockets. It
 * sends each publisher's synthetic RTP at a fixed rate (sendmmsg, a batch per publisher per turn) and reads
 * every socket (epoll, recvmmsg), recording one-way latency from the send time in the payload
 * (conf_cli/bench/packets.py's layout), bytes and sequence gaps, as conf_cli/bench/recorder.py does.
 * The arrival time is the kernel's (SO_TIMESTAMPNS: when the datagram reached the socket), so the latency
 * is the server's and the network's, not the time this process waited for a core before reading.
 *
 * SRTP stays the link's own: each publisher's `protect` and each client's `unprotect` (the compiled SRTP
 * sender and receiver where there are, a Python callable otherwise) are called with the GIL held; the GIL
 * is released around every system call. A datagram that is not RTP (the server's STUN consent checks) goes
 * to the client's `other` callable, which answers it. Counters are only touched with the GIL held, so
 * take() from another thread needs no lock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64          /* datagrams per recvmmsg / sendmmsg */
#define DATAGRAM 2048     /* the largest datagram read (conf's media datagrams are at most 1,500 bytes) */
#define MAX_TRACKS 64     /* SSRCs tracked per client for sequence gaps (the rest are counted, not tracked) */
#define MAX_CLIENTS 4096
#define HEADER 12
#define STAMP 8
#define MAX_WAIT_NS 50000000  /* the longest wait for a datagram before looking at the clock again */

typedef struct {
    uint32_t ssrc;
    int64_t first, high, got;  /* extended sequence numbers: first heard, highest, packets received */
} Track;

typedef struct {
    int fd;
    PyObject *unprotect;  /* callable(bytes) -> bytes | None, or None (plaintext) */
    PyObject *other;      /* callable(bytes): a datagram that is not RTP */
    PyObject *protect;    /* a publisher's callable(bytes) -> bytes | None, or None (plaintext) */
    uint32_t ssrc;        /* a publisher's SSRC */
    int publisher;
    uint16_t seq;
    int64_t sent;         /* packets this publisher made (sent or failed) */
    int64_t ok;           /* of which sent */
    int tracks;
    Track track[MAX_TRACKS];
} Client;

typedef struct {
    PyObject_HEAD
    Client *clients;
    Py_ssize_t count;
    Py_ssize_t payload;
    int running;
    int stopping;  /* stop() was called: run() returns at its next turn */
    /* since the last take() */
    int64_t sent, sent_bytes, send_failed, received, received_bytes, ignored;
    int64_t *latencies;
    Py_ssize_t latency_count, latency_room;
    /* over the whole run */
    int64_t total_sent, total_failed;
} Blaster;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void Blaster_dealloc(Blaster *self) {
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Py_XDECREF(self->clients[i].unprotect);
        Py_XDECREF(self->clients[i].other);
        Py_XDECREF(self->clients[i].protect);
    }
    PyMem_Free(self->clients);
    PyMem_Free(self->latencies);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Blaster(clients, payload): clients is a list of (fd, unprotect, other, protect, ssrc) where protect and
 * ssrc are None for a subscriber. */
static int Blaster_init(Blaster *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"clients", "payload", NULL};
    PyObject *list;
    Py_ssize_t payload;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!n", kwlist, &PyList_Type, &list, &payload)) return -1;
    if (self->clients != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Blaster is set up once");
        return -1;
    }
    Py_ssize_t count = PyList_GET_SIZE(list);
    if (count < 1 || count > MAX_CLIENTS || payload < STAMP || HEADER + payload + 16 > DATAGRAM) {
        PyErr_SetString(PyExc_ValueError, "1 to 4096 clients, and a payload of 8 to 1,400 bytes");
        return -1;
    }
    self->clients = PyMem_Calloc((size_t)count, sizeof(Client));
    if (self->clients == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->payload = payload;
    for (Py_ssize_t i = 0; i < count; i++) {
        Client *c = &self->clients[i];
        PyObject *item = PyList_GET_ITEM(list, i), *ssrc;
        if (!PyArg_ParseTuple(item, "iOOOO", &c->fd, &c->unprotect, &c->other, &c->protect, &ssrc)) return -1;
        Py_INCREF(c->unprotect);
        Py_INCREF(c->other);
        Py_INCREF(c->protect);
        self->count = i + 1;
        if (c->unprotect == Py_None) Py_CLEAR(c->unprotect);
        if (c->protect == Py_None) Py_CLEAR(c->protect);
        if (!PyCallable_Check(c->other) || (c->unprotect != NULL && !PyCallable_Check(c->unprotect)) ||
            (c->protect != NULL && !PyCallable_Check(c->protect))) {
            PyErr_SetString(PyExc_TypeError, "unprotect, other and protect must be callables (or None)");
            return -1;
        }
        if (ssrc != Py_None) {
            unsigned long value = PyLong_AsUnsignedLong(ssrc);
            if (PyErr_Occurred() || value > 0xFFFFFFFFUL) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "an SSRC is a 32-bit number");
                return -1;
            }
            c->ssrc = (uint32_t)value;
            c->publisher = 1;
        }
    }
    return 0;
}

static int note_latency(Blaster *self, int64_t ns) {
    if (self->latency_count == self->latency_room) {
        Py_ssize_t room = self->latency_room ? self->latency_room * 2 : 65536;
        int64_t *grown = PyMem_Realloc(self->latencies, (size_t)room * sizeof(int64_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->latencies = grown;
        self->latency_room = room;
    }
    self->latencies[self->latency_count++] = ns;
    return 0;
}

/* One plain RTP packet received by `c` at `now` (GIL held): as conf_cli.bench.recorder.Receiver. */
static int record(Blaster *self, Client *c, const uint8_t *p, Py_ssize_t len, int64_t now) {
    if (len < HEADER + STAMP || (p[1] >= 200 && p[1] <= 206)) {  /* short, or RTCP (RFC 5761) */
        self->ignored++;
        return 0;
    }
    uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
    uint32_t ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    uint64_t stamp = 0;
    for (int i = 0; i < STAMP; i++) stamp = stamp << 8 | p[HEADER + i];
    self->received++;
    self->received_bytes += len;
    if (note_latency(self, now - (int64_t)stamp) < 0) return -1;
    for (int i = 0; i < c->tracks; i++) {
        Track *t = &c->track[i];
        if (t->ssrc == ssrc) {
            uint16_t delta = (uint16_t)(seq - (uint16_t)t->high);
            if (delta < 0x8000) t->high += delta;
            t->got++;
            return 0;
        }
    }
    if (c->tracks < MAX_TRACKS) c->track[c->tracks++] = (Track){ssrc, seq, seq, 1};
    return 0;
}

#define CONTROL 64  /* room for an SCM_TIMESTAMPNS message */

/* When datagram `msg` reached the socket, on the monotonic clock (`offset`: realtime less monotonic), or
 * `fallback` if the kernel gave no time stamp. */
static int64_t arrival(struct msghdr *msg, int64_t offset, int64_t fallback) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(cm), sizeof(t));
            return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec - offset;
        }
    }
    return fallback;
}

/* Read everything waiting on client `c`'s socket (GIL held on entry and exit). */
static int drain(Blaster *self, Client *c, uint8_t (*bufs)[DATAGRAM], struct mmsghdr *msgs, struct iovec *iovs) {
    uint8_t control[BATCH][CONTROL];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iovs[i] = (struct iovec){bufs[i], DATAGRAM};
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = control[i];
            msgs[i].msg_hdr.msg_controllen = CONTROL;
        }
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = recvmmsg(c->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        Py_END_ALLOW_THREADS
        if (n <= 0) return 0;  /* nothing more (EAGAIN), or an ICMP error: read again next turn */
        int64_t now = now_ns();
        struct timespec real;
        clock_gettime(CLOCK_REALTIME, &real);
        int64_t offset = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - now_ns();
        for (int i = 0; i < n; i++) {
            int64_t at = arrival(&msgs[i].msg_hdr, offset, now);
            const uint8_t *data = bufs[i];
            Py_ssize_t len = msgs[i].msg_len;
            if (len < 1 || data[0] >> 6 != 2) {  /* not RTP: a STUN consent check, for the link */
                PyObject *r = PyObject_CallFunction(c->other, "y#", (const char *)data, len);
                if (r == NULL) return -1;
                Py_DECREF(r);
                continue;
            }
            if (c->unprotect == NULL) {
                if (record(self, c, data, len, at) < 0) return -1;
                continue;
            }
            PyObject *packet = PyBytes_FromStringAndSize((const char *)data, len);
            if (packet == NULL) return -1;
            PyObject *clear = PyObject_CallOneArg(c->unprotect, packet);
            Py_DECREF(packet);
            if (clear == NULL) return -1;
            if (PyBytes_Check(clear)) {
                if (record(self, c, (const uint8_t *)PyBytes_AS_STRING(clear), PyBytes_GET_SIZE(clear), at) < 0) {
                    Py_DECREF(clear);
                    return -1;
                }
            } else {
                self->ignored++;  /* failed authentication, or a replay */
            }
            Py_DECREF(clear);
        }
        if (n < BATCH) return 0;
    }
}

/* Make, protect and send publisher `c`'s packets up to `due` (GIL held on entry and exit). */
static int publish(Blaster *self, Client *c, int64_t due, uint8_t (*bufs)[DATAGRAM], struct mmsghdr *msgs,
                   struct iovec *iovs) {
    while (c->sent < due) {
        int n = 0;
        while (c->sent < due && n < BATCH) {
            int64_t now = now_ns();
            uint8_t packet[DATAGRAM];
            Py_ssize_t len = HEADER + self->payload;
            uint32_t ts = (uint32_t)((uint64_t)now * 9 / 100000);  /* the 90 kHz clock, as packets.py */
            uint8_t head[HEADER] = {0x80, 96, (uint8_t)(c->seq >> 8), (uint8_t)c->seq,
                                    (uint8_t)(ts >> 24), (uint8_t)(ts >> 16), (uint8_t)(ts >> 8), (uint8_t)ts,
                                    (uint8_t)(c->ssrc >> 24), (uint8_t)(c->ssrc >> 16), (uint8_t)(c->ssrc >> 8),
                                    (uint8_t)c->ssrc};
            memcpy(packet, head, HEADER);
            for (int i = 0; i < STAMP; i++) packet[HEADER + i] = (uint8_t)((uint64_t)now >> (56 - 8 * i));
            memset(packet + HEADER + STAMP, 0, (size_t)(self->payload - STAMP));
            c->seq++;
            c->sent++;
            if (c->protect == NULL) {
                memcpy(bufs[n], packet, (size_t)len);
            } else {
                PyObject *plain = PyBytes_FromStringAndSize((const char *)packet, len);
                if (plain == NULL) return -1;
                PyObject *out = PyObject_CallOneArg(c->protect, plain);
                Py_DECREF(plain);
                if (out == NULL) return -1;
                if (!PyBytes_Check(out) || PyBytes_GET_SIZE(out) > DATAGRAM) {
                    Py_DECREF(out);
                    self->send_failed++;
                    self->total_failed++;
                    continue;
                }
                len = PyBytes_GET_SIZE(out);
                memcpy(bufs[n], PyBytes_AS_STRING(out), (size_t)len);
                Py_DECREF(out);
            }
            iovs[n] = (struct iovec){bufs[n], (size_t)len};
            memset(&msgs[n].msg_hdr, 0, sizeof(msgs[n].msg_hdr));
            msgs[n].msg_hdr.msg_iov = &iovs[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            msgs[n].msg_len = (unsigned)len;
            n++;
        }
        int done = 0;
        while (done < n) {
            int k;
            Py_BEGIN_ALLOW_THREADS
            k = sendmmsg(c->fd, msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
            Py_END_ALLOW_THREADS
            if (k <= 0) {  /* a full socket buffer or an ICMP error: this datagram is dropped, never waited for */
                self->send_failed++;
                self->total_failed++;
                done++;
                continue;
            }
            for (int i = done; i < done + k; i++) self->sent_bytes += msgs[i].msg_len;
            self->sent += k;
            self->total_sent += k;
            c->ok += k;
            done += k;
        }
    }
    return 0;
}

/* run(t0_ns, end_ns, rate, drain_ns): send from t0 to end at `rate` packets/s per publisher, and read
 * until end + drain. Blocks (the GIL released while waiting); returns None. */
static PyObject *Blaster_run(Blaster *self, PyObject *args) {
    long long t0, end, drain_for;
    double rate;
    if (!PyArg_ParseTuple(args, "LLdL", &t0, &end, &rate, &drain_for)) return NULL;
    if (self->clients == NULL || self->running) {
        PyErr_SetString(PyExc_RuntimeError, "run() needs a set-up Blaster that is not running");
        return NULL;
    }
    if (rate < 0 || rate > 1e6 || drain_for < 0) {
        PyErr_SetString(PyExc_ValueError, "rate 0 to 1,000,000 packets/s, and drain_ns >= 0");
        return NULL;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return PyErr_SetFromErrno(PyExc_OSError);
    for (Py_ssize_t i = 0; i < self->count; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        int on = 1;
        if (setsockopt(self->clients[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, self->clients[i].fd, &ev) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            close(ep);
            return NULL;
        }
    }
    uint8_t(*bufs)[DATAGRAM] = PyMem_Malloc(BATCH * DATAGRAM);
    struct mmsghdr *msgs = PyMem_Malloc(BATCH * sizeof(struct mmsghdr));
    struct iovec *iovs = PyMem_Malloc(BATCH * sizeof(struct iovec));
    struct epoll_event *events = PyMem_Malloc((size_t)self->count * sizeof(struct epoll_event));
    PyObject *result = NULL;
    if (bufs == NULL || msgs == NULL || iovs == NULL || events == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    self->running = 1;
    self->stopping = 0;
    double per_ns = rate / 1e9;
    int64_t stop = end + drain_for;
    for (;;) {
        int64_t now = now_ns();
        if (now >= stop || self->stopping) break;
        int64_t wait_ns = stop - now;
        if (now < end && rate > 0) {
            int64_t due = now < t0 ? 0 : (int64_t)((double)(now - t0) * per_ns) + 1;
            for (Py_ssize_t i = 0; i < self->count; i++) {
                Client *c = &self->clients[i];
                if (c->publisher && publish(self, c, due, bufs, msgs, iovs) < 0) goto out;
            }
            /* until the next packet is due */
            int64_t next = t0 + (int64_t)((double)due / per_ns);
            wait_ns = next > now ? next - now : 0;
        }
        if (PyErr_CheckSignals() < 0) goto out;
        if (wait_ns > MAX_WAIT_NS) wait_ns = MAX_WAIT_NS;
        struct timespec timeout = {(time_t)(wait_ns / 1000000000), (long)(wait_ns % 1000000000)};
        int ready;
        Py_BEGIN_ALLOW_THREADS
        ready = epoll_pwait2(ep, events, (int)self->count, &timeout, NULL);  /* (to the nanosecond: pacing) */
        Py_END_ALLOW_THREADS
        if (ready < 0 && errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto out;
        }
        for (int i = 0; i < ready; i++) {
            if (drain(self, &self->clients[events[i].data.u64], bufs, msgs, iovs) < 0) goto out;
        }
    }
    result = Py_None;
    Py_INCREF(result);
out:
    self->running = 0;
    close(ep);
    PyMem_Free(bufs);
    PyMem_Free(msgs);
    PyMem_Free(iovs);
    PyMem_Free(events);
    return result;
}

/* take() -> (sent, sent_bytes, send_failed, received, received_bytes, ignored, latencies as bytes of
 * int64 ns): the counters since the last take(), reset. */
static PyObject *Blaster_take(Blaster *self, PyObject *unused) {
    (void)unused;
    PyObject *latencies =
        PyBytes_FromStringAndSize((const char *)self->latencies, self->latency_count * (Py_ssize_t)sizeof(int64_t));
    if (latencies == NULL) return NULL;
    PyObject *result = Py_BuildValue("LLLLLLN", (long long)self->sent, (long long)self->sent_bytes,
                                     (long long)self->send_failed, (long long)self->received,
                                     (long long)self->received_bytes, (long long)self->ignored, latencies);
    if (result == NULL) return NULL;
    self->sent = self->sent_bytes = self->send_failed = self->received = self->received_bytes = self->ignored = 0;
    self->latency_count = 0;
    return result;
}

/* stop(): run() returns at its next turn (within MAX_WAIT_NS). */
static PyObject *Blaster_stop(Blaster *self, PyObject *unused) {
    (void)unused;
    self->stopping = 1;
    Py_RETURN_NONE;
}

/* totals() -> (sent per client, send_failed, gaps): over the whole run. */
static PyObject *Blaster_totals(Blaster *self, PyObject *unused) {
    (void)unused;
    int64_t gaps = 0;
    PyObject *sent = PyList_New(self->count);
    if (sent == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Client *c = &self->clients[i];
        PyObject *ok = PyLong_FromLongLong((long long)c->ok);
        if (ok == NULL) {
            Py_DECREF(sent);
            return NULL;
        }
        PyList_SET_ITEM(sent, i, ok);
        for (int t = 0; t < c->tracks; t++) {
            int64_t missing = c->track[t].high - c->track[t].first + 1 - c->track[t].got;
            if (missing > 0) gaps += missing;
        }
    }
    return Py_BuildValue("NLL", sent, (long long)self->total_failed, (long long)gaps);
}

static PyMethodDef Blaster_methods[] = {
    {"run", (PyCFunction)Blaster_run, METH_VARARGS,
     "run(t0_ns, end_ns, rate, drain_ns): send and receive until end_ns + drain_ns (blocks)."},
    {"take", (PyCFunction)Blaster_take, METH_NOARGS,
     "take() -> (sent, sent_bytes, send_failed, received, received_bytes, ignored, latencies): since the last."},
    {"stop", (PyCFunction)Blaster_stop, METH_NOARGS, "stop(): run() returns at its next turn."},
    {"totals", (PyCFunction)Blaster_totals, METH_NOARGS,
     "totals() -> (sent per client, send_failed, gaps): the whole run."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject BlasterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "conf_cli.bench._blast.Blaster",
    .tp_doc = "Blaster(clients, payload): a worker's clients' media in compiled code (see _blast.c).",
    .tp_basicsize = sizeof(Blaster),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Blaster_init,
    .tp_dealloc = (destructor)Blaster_dealloc,
    .tp_methods = Blaster_methods,
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_blast",
                                       "conf bench's compiled media loop (sendmmsg, recvmmsg, epoll).", -1,
                                       NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__blast(void) {
    if (PyType_Ready(&BlasterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&BlasterType);
    if (PyModule_AddObject(m, "Blaster", (PyObject *)&BlasterType) < 0) {
        Py_DECREF(&BlasterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
