/* SRTP AEAD_AES_128_GCM (RFC 7714) protection on the sending side, through OpenSSL's EVP.
 *
 * A Sender holds one link's outbound SRTP session key and salt (derived in Python, RFC 3711 section 4.3)
 * and, per SSRC, what libsrtp's sender keeps (the packet index, from which the rollover counter comes)
 * and what conf_crypto.srtp.SentIndexes keeps (the packet protected under each of the last `window`
 * indexes, so that an index is never protected twice with different bytes). Its output is byte for byte
 * libsrtp's for the same keys and packets (the tests compare them). protect_many() protects one packet
 * for many Senders in one call, into the slots of a preallocated buffer. A Receiver checks and decrypts what
 * a link sends, with libsrtp's replay database (the same window, rounded up to 32 as libsrtp does).
 *
 * AES-GCM itself runs in one of two engines, chosen per object (`engine`, the best one by default):
 * "vaes" (_gcm_vaes.h: AVX-512 VAES and VPCLMULQDQ, the key schedule and GHASH's key powers computed once
 * per key, one call per packet) where the CPU has those instructions, else "openssl" (OpenSSL's EVP
 * AES-128-GCM, its key schedule kept in the context, the IV set per packet). Both give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <string.h>

#define TAG_LEN 16
#define SALT_LEN 12
#define KEY_LEN 16
#define MAX_WINDOW 0x8000
#define CACHE 16

#include "_gcm_vaes.h"
#ifndef GCM_VAES
typedef struct Gcm Gcm; /* (never allocated without VAES) */
#endif

static int vaes_ok; /* set at import: this CPU can run the "vaes" engine */

/* The AES-GCM state for `engine` ("vaes", "openssl", or "" for the best here) and `key`: *gcm for VAES,
 * else *ctx (EVP, set up to encrypt or decrypt). 0 with an exception set if the engine is not available. */
static int engine_setup(const char *engine, const uint8_t *key, int encrypt, Gcm **gcm, EVP_CIPHER_CTX **ctx) {
    int vaes = strcmp(engine, "vaes") == 0 || (engine[0] == '\0' && vaes_ok);
    if (vaes && !vaes_ok) {
        PyErr_SetString(PyExc_ValueError, "the vaes engine needs a CPU with AVX-512 VAES and VPCLMULQDQ");
        return 0;
    }
    if (!vaes && engine[0] != '\0' && strcmp(engine, "openssl") != 0) {
        PyErr_Format(PyExc_ValueError, "unknown AES-GCM engine %s (vaes or openssl)", engine);
        return 0;
    }
    if (*gcm != NULL) {
        OPENSSL_cleanse(*gcm, sizeof(**gcm));
        PyMem_Free(*gcm);
        *gcm = NULL;
    }
    if (*ctx != NULL) {
        EVP_CIPHER_CTX_free(*ctx);
        *ctx = NULL;
    }
#ifdef GCM_VAES
    if (vaes) {
        *gcm = PyMem_Malloc(sizeof(Gcm));
        if (*gcm == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        gcm_init(*gcm, key);
        return 1;
    }
#endif
    *ctx = EVP_CIPHER_CTX_new();
    if (*ctx == NULL || EVP_CipherInit_ex(*ctx, EVP_aes_128_gcm(), NULL, key, NULL, encrypt) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not set up AES-128-GCM");
        return 0;
    }
    return 1;
}

static void engine_free(Gcm *gcm, EVP_CIPHER_CTX *ctx) {
    if (ctx != NULL) EVP_CIPHER_CTX_free(ctx);
    if (gcm != NULL) {
        OPENSSL_cleanse(gcm, sizeof(*gcm));
        PyMem_Free(gcm);
    }
}

typedef struct {
    PyObject_HEAD
    int64_t highest;   /* SentIndexes: extended sequence number of the newest packet protected, -1: none */
    uint64_t index;    /* libsrtp's replay database index (rollover counter << 16 | sequence number) */
    uint64_t used;     /* when this stream was last looked up (least recently used goes first) */
    Py_ssize_t size;
    PyObject **slots;  /* the packet (bytes) protected under each of the last `size` indexes, or NULL */
} Stream;

static void Stream_dealloc(Stream *self) {
    if (self->slots != NULL) {
        for (Py_ssize_t i = 0; i < self->size; i++) Py_XDECREF(self->slots[i]);
        PyMem_Free(self->slots);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "conf_crypto._srtp_gcm.Stream",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_new = NULL,
};

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *ctx; /* the "openssl" engine's, or NULL */
    Gcm *gcm;            /* the "vaes" engine's, or NULL */
    uint8_t salt[SALT_LEN];
    Py_ssize_t window;
    Py_ssize_t max_streams;
    Py_ssize_t max_packet;
    PyObject *streams;   /* dict: SSRC (int) -> Stream */
    PyObject *retired;   /* set of SSRCs whose streams were evicted: refused from then on */
    Stream *last;        /* the stream looked up last (borrowed from `streams`), or NULL */
    uint32_t last_ssrc;
    uint32_t cached_ssrc[CACHE];  /* a direct-mapped cache in front of `streams` (borrowed pointers) */
    Stream *cached[CACHE];
    uint64_t clock;
    Py_ssize_t refused;
} Sender;

static void Sender_dealloc(Sender *self) {
    engine_free(self->gcm, self->ctx);
    Py_XDECREF(self->streams);
    Py_XDECREF(self->retired);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Sender_init(Sender *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"key", "salt", "window", "max_streams", "max_packet", "engine", NULL};
    Py_buffer key, salt;
    Py_ssize_t window, max_streams, max_packet;
    const char *engine = "";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*nnn|s", kwlist, &key, &salt, &window, &max_streams,
                                     &max_packet, &engine))
        return -1;
    int ok = 0;
    if (key.len != KEY_LEN || salt.len != SALT_LEN) {
        PyErr_SetString(PyExc_ValueError, "an AES-128-GCM session key has 16 bytes and its salt 12");
    } else if (window < 1 || window > MAX_WINDOW || max_streams < 1 || max_packet < 12) {
        PyErr_SetString(PyExc_ValueError, "window, max_streams or max_packet out of range");
    } else if (engine_setup(engine, key.buf, 1, &self->gcm, &self->ctx)) {
        memcpy(self->salt, salt.buf, SALT_LEN);
        self->window = window;
        self->max_streams = max_streams;
        self->max_packet = max_packet;
        Py_XSETREF(self->streams, PyDict_New());
        Py_XSETREF(self->retired, PySet_New(NULL));
        self->last = NULL;
        memset(self->cached, 0, sizeof(self->cached));
        ok = self->streams != NULL && self->retired != NULL;
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&salt);
    return ok ? 0 : -1;
}

/* The stream of `ssrc`, created if new; NULL without an exception if the SSRC is retired. */
static Stream *sender_stream(Sender *self, uint32_t ssrc) {
    if (self->last != NULL && self->last_ssrc == ssrc) return self->last;
    unsigned slot = (ssrc ^ (ssrc >> 16)) % CACHE;
    Stream *hit = self->cached[slot];
    if (hit != NULL && self->cached_ssrc[slot] == ssrc) {
        hit->used = ++self->clock;  /* as a dict hit: moved to the most recently used end */
        self->last = hit;
        self->last_ssrc = ssrc;
        return hit;
    }
    PyObject *key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL) return NULL;
    Stream *stream = (Stream *)PyDict_GetItemWithError(self->streams, key);
    if (stream != NULL) {
        stream->used = ++self->clock;
    } else if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    } else {
        int retired = PySet_Contains(self->retired, key);
        if (retired != 0) {  /* retired (1) or an error (-1) */
            Py_DECREF(key);
            return NULL;
        }
        stream = PyObject_New(Stream, &StreamType);
        if (stream == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        stream->highest = -1;
        stream->index = 0;
        stream->used = ++self->clock;
        stream->size = self->window;
        stream->slots = PyMem_Calloc((size_t)self->window, sizeof(PyObject *));
        if (stream->slots == NULL || PyDict_SetItem(self->streams, key, (PyObject *)stream) < 0) {
            Py_DECREF(stream);
            Py_DECREF(key);
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return NULL;
        }
        Py_DECREF(stream);  /* the dict holds it */
        if (PyDict_GET_SIZE(self->streams) > self->max_streams) {
            /* forget the least recently used stream, and refuse its SSRC from then on */
            Py_ssize_t pos = 0;
            PyObject *k, *v, *oldest_key = NULL;
            uint64_t oldest = UINT64_MAX;
            while (PyDict_Next(self->streams, &pos, &k, &v)) {
                if (((Stream *)v)->used < oldest) {
                    oldest = ((Stream *)v)->used;
                    oldest_key = k;
                }
            }
            memset(self->cached, 0, sizeof(self->cached));  /* it may be cached: forget them all */
            Py_INCREF(oldest_key);
            int failed = PySet_Add(self->retired, oldest_key) < 0 || PyDict_DelItem(self->streams, oldest_key) < 0;
            Py_DECREF(oldest_key);
            if (failed) {
                Py_DECREF(key);
                self->last = NULL;
                return NULL;
            }
        }
    }
    Py_DECREF(key);
    self->last = stream;
    self->last_ssrc = ssrc;
    self->cached[slot] = stream;
    self->cached_ssrc[slot] = ssrc;
    return stream;
}

static inline Py_ssize_t slot_of(int64_t index, Py_ssize_t size) {
    if ((size & (size - 1)) == 0) return (Py_ssize_t)(index & (size - 1));  /* (the usual window: no division) */
    int64_t slot = index % size;
    return (Py_ssize_t)(slot < 0 ? slot + size : slot);  /* as Python's %: an index may be below 0 */
}

/* SentIndexes.allow: may `packet` (sequence number `seq`) be protected now? Notes it if so. */
static int sent_allow(Stream *s, PyObject *packet, uint16_t seq) {
    Py_ssize_t size = s->size;
    if (s->highest < 0) {
        s->highest = seq;
        Py_INCREF(packet);
        Py_XSETREF(s->slots[slot_of(seq, size)], packet);
        return 1;
    }
    int64_t highest = s->highest;
    int64_t delta = ((int64_t)seq - highest + 0x8000) % 0x10000;
    if (delta < 0) delta += 0x10000;
    delta -= 0x8000;
    int64_t index = highest + delta;
    if (delta > 0) {
        if (delta >= size) {
            for (Py_ssize_t i = 0; i < size; i++) Py_CLEAR(s->slots[i]);
        } else {
            for (int64_t skipped = highest + 1; skipped < index; skipped++) Py_CLEAR(s->slots[slot_of(skipped, size)]);
        }
        s->highest = index;
        Py_INCREF(packet);
        Py_XSETREF(s->slots[slot_of(index, size)], packet);
        return 1;
    }
    if (-delta >= size) return 0;
    PyObject *previous = s->slots[slot_of(index, size)];
    if (previous == NULL) {
        Py_INCREF(packet);
        s->slots[slot_of(index, size)] = packet;
        return 1;
    }
    if (previous == packet) return 1;
    return PyBytes_GET_SIZE(previous) == PyBytes_GET_SIZE(packet) &&
           memcmp(PyBytes_AS_STRING(previous), PyBytes_AS_STRING(packet), (size_t)PyBytes_GET_SIZE(packet)) == 0;
}

/* libsrtp 2's srtp_rdbx_estimate_index: the packet index of sequence number `seq` and its distance
 * from the newest index. */
static int32_t estimate_index(uint64_t local, uint64_t *guess, uint16_t s) {
    if (local <= 0x8000) {
        *guess = s;
        return (int32_t)((int64_t)s - (int64_t)local);
    }
    uint32_t local_roc = (uint32_t)(local >> 16);
    uint16_t local_seq = (uint16_t)local;
    uint32_t guess_roc;
    int32_t difference;
    if (local_seq < 0x8000) {
        if ((int32_t)s - (int32_t)local_seq > 0x8000) {
            guess_roc = local_roc - 1;
            difference = (int32_t)s - (int32_t)local_seq - 0x10000;
        } else {
            guess_roc = local_roc;
            difference = (int32_t)s - (int32_t)local_seq;
        }
    } else {
        if ((int32_t)local_seq - 0x8000 > (int32_t)s) {
            guess_roc = local_roc + 1;
            difference = (int32_t)s - (int32_t)local_seq + 0x10000;
        } else {
            guess_roc = local_roc;
            difference = (int32_t)s - (int32_t)local_seq;
        }
    }
    *guess = ((uint64_t)guess_roc << 16) | s;
    return difference;
}

/* Protect `packet` (bytes) into `out` (room for len + 16); the SRTP length, or -1 if refused, or -2
 * with an exception set. */
static Py_ssize_t sender_protect(Sender *self, PyObject *packet, uint8_t *out) {
    const uint8_t *in = (const uint8_t *)PyBytes_AS_STRING(packet);
    Py_ssize_t len = PyBytes_GET_SIZE(packet);
    if (len < 12) goto refuse;  /* (SrtpSession.protect fails on it: no SSRC) */
    uint32_t ssrc = (uint32_t)in[8] << 24 | (uint32_t)in[9] << 16 | (uint32_t)in[10] << 8 | in[11];
    uint16_t seq = (uint16_t)(in[2] << 8 | in[3]);
    Stream *stream = sender_stream(self, ssrc);
    if (stream == NULL) {
        if (PyErr_Occurred()) return -2;
        goto refuse;
    }
    if (!sent_allow(stream, packet, seq)) goto refuse;
    if (len > self->max_packet) goto refuse;  /* longer than libsrtp's buffer (pylibsrtp refuses it) */
    /* the header, as libsrtp's srtp_validate_rtp_header reads it */
    Py_ssize_t header = 12 + 4 * (in[0] & 0x0F);
    if (header > len) goto refuse;
    if (in[0] & 0x10) {
        if (header + 4 > len) goto refuse;
        header += 4 + 4 * (Py_ssize_t)(in[header + 2] << 8 | in[header + 3]);
        if (header > len) goto refuse;
    }
    uint64_t est;
    int32_t delta = estimate_index(stream->index, &est, seq);
    if (delta > 0) {
        stream->index += (uint64_t)delta;  /* libsrtp's srtp_rdbx_add_index */
    } else if ((int64_t)self->window - 1 + delta < 0) {
        goto refuse;  /* libsrtp: replay_old */
    }
    /* (an index within the window is accepted whether seen or not: the sender allows repeats) */
    uint32_t roc = (uint32_t)(est >> 16);
    uint8_t iv[SALT_LEN] = {0, 0, in[8], in[9], in[10], in[11],
                            (uint8_t)(roc >> 24), (uint8_t)(roc >> 16), (uint8_t)(roc >> 8), (uint8_t)roc,
                            in[2], in[3]};
    for (int i = 0; i < SALT_LEN; i++) iv[i] ^= self->salt[i];
    Py_ssize_t body = len - header;
#ifdef GCM_VAES
    if (self->gcm != NULL) {
        gcm_crypt(self->gcm, iv, in, (size_t)header, in + header, out + header, (size_t)body, 1, out + len);
        memcpy(out, in, (size_t)header);
        return len + TAG_LEN;
    }
#endif
    EVP_CIPHER_CTX *ctx = self->ctx;
    int n = 0, m = 0;
    /* (the tag read through a parameter and the IV set by EVP_CipherInit_ex2: a little less of OpenSSL
     * 3's per-call bookkeeping than EVP_CIPHER_CTX_ctrl and EVP_EncryptInit_ex) */
    OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len, TAG_LEN),
                         OSSL_PARAM_END};
    if (EVP_CipherInit_ex2(ctx, NULL, NULL, iv, 1, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, in, (int)header) != 1 ||
        EVP_EncryptUpdate(ctx, out + header, &n, in + header, (int)body) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + header + n, &m) != 1 || EVP_CIPHER_CTX_get_params(ctx, tag) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to encrypt with AES-128-GCM");
        return -2;
    }
    memcpy(out, in, (size_t)header);
    return len + TAG_LEN;
refuse:
    self->refused++;
    return -1;
}

static PyObject *Sender_protect(Sender *self, PyObject *packet) {
    if (!PyBytes_CheckExact(packet)) {
        PyErr_SetString(PyExc_TypeError, "packet must be bytes");
        return NULL;
    }
    if (self->ctx == NULL && self->gcm == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Sender not initialised");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(packet) + TAG_LEN);
    if (result == NULL) return NULL;
    Py_ssize_t n = sender_protect(self, packet, (uint8_t *)PyBytes_AS_STRING(result));
    if (n == -2) {
        Py_DECREF(result);
        return NULL;
    }
    if (n < 0) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *Sender_get_refused(Sender *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->refused);
}
static PyObject *Sender_get_streams(Sender *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->streams == NULL ? 0 : PyDict_GET_SIZE(self->streams));
}
static PyObject *engine_name(Gcm *gcm, EVP_CIPHER_CTX *ctx) {
    return PyUnicode_FromString(gcm != NULL ? "vaes" : ctx != NULL ? "openssl" : "");
}
static PyObject *Sender_get_engine(Sender *self, void *closure) {
    (void)closure;
    return engine_name(self->gcm, self->ctx);
}

static PyMethodDef Sender_methods[] = {
    {"protect", (PyCFunction)Sender_protect, METH_O,
     "protect(packet: bytes) -> bytes | None: the SRTP packet, or None if it must not be sent."},
    {NULL}};

static PyGetSetDef Sender_getset[] = {
    {"refused", (getter)Sender_get_refused, NULL, "packets refused so far", NULL},
    {"streams", (getter)Sender_get_streams, NULL, "SSRCs whose sent indexes are remembered", NULL},
    {"engine", (getter)Sender_get_engine, NULL, "the AES-GCM engine: vaes or openssl", NULL},
    {NULL}};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "conf_crypto._srtp_gcm.Sender",
    .tp_doc = "Sender(key, salt, window, max_streams, max_packet, engine=''): one link's outbound SRTP (AES-128-GCM).",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_methods = Sender_methods,
    .tp_getset = Sender_getset,
};

/* protect_many(senders, packet, out, stride, lengths) -> int */
static PyObject *protect_many(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *packet, *senders;
    Py_buffer out, lengths;
    Py_ssize_t stride;
    if (!PyArg_ParseTuple(args, "O!Sw*nw*", &PyTuple_Type, &senders, &packet, &out, &stride, &lengths))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(senders), done = 0;
    if (lengths.itemsize != 4 || lengths.len / 4 < count || stride < PyBytes_GET_SIZE(packet) + TAG_LEN ||
        out.len / (stride > 0 ? stride : 1) < count) {
        PyErr_SetString(PyExc_ValueError, "the output buffers are too small for this batch");
        goto end;
    }
    int32_t *len_out = (int32_t *)lengths.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *sender = PyTuple_GET_ITEM(senders, i);
        if (Py_TYPE(sender) != &SenderType || (((Sender *)sender)->ctx == NULL && ((Sender *)sender)->gcm == NULL)) {
            PyErr_SetString(PyExc_TypeError, "senders must be initialised Sender objects");
            goto end;
        }
        Py_ssize_t n = sender_protect((Sender *)sender, packet, (uint8_t *)out.buf + i * stride);
        if (n == -2) goto end;
        len_out[i] = (int32_t)n;
        if (n >= 0) done++;
    }
    result = PyLong_FromSsize_t(done);
end:
    PyBuffer_Release(&out);
    PyBuffer_Release(&lengths);
    return result;
}


/* -- the receiving side: decryption, authentication and libsrtp's replay database ---------------------- */

typedef struct {
    uint64_t index;     /* the newest packet index accepted (rollover counter << 16 | sequence number) */
    uint32_t *bits;     /* which of the last `window` indexes were accepted, by index % window */
} Replay;

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *ctx;  /* the "openssl" engine's, or NULL */
    Gcm *gcm;             /* the "vaes" engine's, or NULL */
    uint8_t salt[SALT_LEN];
    Py_ssize_t window;    /* libsrtp's bit vector length: the window size rounded up to 32 */
    Py_ssize_t max_packet;
    PyObject *streams;    /* dict: SSRC (int) -> capsule of a Replay */
    uint32_t last_ssrc;
    Replay *last;
} Receiver;

static void replay_free(PyObject *capsule) {
    Replay *replay = PyCapsule_GetPointer(capsule, NULL);
    if (replay != NULL) {
        PyMem_Free(replay->bits);
        PyMem_Free(replay);
    }
}

static void Receiver_dealloc(Receiver *self) {
    engine_free(self->gcm, self->ctx);
    Py_XDECREF(self->streams);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Receiver_init(Receiver *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"key", "salt", "window", "max_packet", "engine", NULL};
    Py_buffer key, salt;
    Py_ssize_t window, max_packet;
    const char *engine = "";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*nn|s", kwlist, &key, &salt, &window, &max_packet, &engine))
        return -1;
    int ok = 0;
    if (key.len != KEY_LEN || salt.len != SALT_LEN) {
        PyErr_SetString(PyExc_ValueError, "an AES-128-GCM session key has 16 bytes and its salt 12");
    } else if (window < 64 || window >= MAX_WINDOW || max_packet < 12) {
        PyErr_SetString(PyExc_ValueError, "window (64 to 32767) or max_packet out of range");
    } else if (engine_setup(engine, key.buf, 0, &self->gcm, &self->ctx)) {
        memcpy(self->salt, salt.buf, SALT_LEN);
        self->window = (window + 31) & ~(Py_ssize_t)31;  /* as libsrtp's bitvector_alloc */
        self->max_packet = max_packet;
        Py_XSETREF(self->streams, PyDict_New());
        self->last = NULL;
        ok = self->streams != NULL;
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&salt);
    return ok ? 0 : -1;
}

static inline int replay_bit(Receiver *self, Replay *r, uint64_t index) {
    uint64_t slot = index % (uint64_t)self->window;
    return (r->bits[slot / 32] >> (slot % 32)) & 1;
}

static inline void replay_set(Receiver *self, Replay *r, uint64_t index) {
    uint64_t slot = index % (uint64_t)self->window;
    r->bits[slot / 32] |= (uint32_t)1 << (slot % 32);
}

/* libsrtp's srtp_rdbx_add_index: note `delta` from the newest index as accepted. */
static void replay_add(Receiver *self, Replay *r, int32_t delta) {
    if (delta > 0) {
        uint64_t from = r->index + 1, to = r->index + (uint64_t)delta;
        if ((uint64_t)delta >= (uint64_t)self->window) {
            memset(r->bits, 0, (size_t)self->window / 8);
        } else {
            for (uint64_t i = from; i <= to; i++) {  /* the window slides: indexes it passes are new */
                uint64_t slot = i % (uint64_t)self->window;
                r->bits[slot / 32] &= ~((uint32_t)1 << (slot % 32));
            }
        }
        r->index = to;
        replay_set(self, r, to);
    } else {
        replay_set(self, r, r->index + (uint64_t)(int64_t)delta);
    }
}

/* Decrypt and authenticate `in` (header, then body, then the tag) into out + header: 1 if the tag is right. */
static int receiver_open(Receiver *self, const uint8_t *iv, const uint8_t *in, Py_ssize_t header, Py_ssize_t body,
                         uint8_t *out) {
#ifdef GCM_VAES
    if (self->gcm != NULL) {
        uint8_t tag[TAG_LEN];
        gcm_crypt(self->gcm, iv, in, (size_t)header, in + header, out + header, (size_t)body, 0, tag);
        return CRYPTO_memcmp(tag, in + header + body, TAG_LEN) == 0;
    }
#endif
    EVP_CIPHER_CTX *ctx = self->ctx;
    int n = 0, m = 0;
    OSSL_PARAM tag[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)(in + header + body), TAG_LEN),
        OSSL_PARAM_END};
    return EVP_CipherInit_ex2(ctx, NULL, NULL, iv, 0, NULL) == 1 &&
           EVP_DecryptUpdate(ctx, NULL, &n, in, (int)header) == 1 &&
           EVP_DecryptUpdate(ctx, out + header, &n, in + header, (int)body) == 1 &&
           EVP_CIPHER_CTX_set_params(ctx, tag) == 1 && EVP_DecryptFinal_ex(ctx, out + header + n, &m) == 1;
}

/* The plain RTP packet, None if it fails authentication or is a replay (libsrtp's srtp_unprotect). */
static PyObject *Receiver_unprotect(Receiver *self, PyObject *packet) {
    if (!PyBytes_CheckExact(packet)) {
        PyErr_SetString(PyExc_TypeError, "packet must be bytes");
        return NULL;
    }
    if (self->ctx == NULL && self->gcm == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver not initialised");
        return NULL;
    }
    const uint8_t *in = (const uint8_t *)PyBytes_AS_STRING(packet);
    Py_ssize_t len = PyBytes_GET_SIZE(packet);
    if (len < 12 || len > self->max_packet) Py_RETURN_NONE;
    Py_ssize_t header = 12 + 4 * (in[0] & 0x0F);
    if (header > len) Py_RETURN_NONE;
    if (in[0] & 0x10) {
        if (header + 4 > len) Py_RETURN_NONE;
        header += 4 + 4 * (Py_ssize_t)(in[header + 2] << 8 | in[header + 3]);
        if (header > len) Py_RETURN_NONE;
    }
    if (header > len - TAG_LEN) Py_RETURN_NONE;  /* no room for the tag */
    uint32_t ssrc = (uint32_t)in[8] << 24 | (uint32_t)in[9] << 16 | (uint32_t)in[10] << 8 | in[11];
    uint16_t seq = (uint16_t)(in[2] << 8 | in[3]);
    Replay *replay = NULL;
    if (self->last != NULL && self->last_ssrc == ssrc) {
        replay = self->last;
    } else {
        PyObject *key = PyLong_FromUnsignedLong(ssrc);
        if (key == NULL) return NULL;
        PyObject *capsule = PyDict_GetItemWithError(self->streams, key);
        Py_DECREF(key);
        if (capsule == NULL && PyErr_Occurred()) return NULL;
        if (capsule != NULL) replay = PyCapsule_GetPointer(capsule, NULL);
    }
    uint64_t est;
    int32_t delta;
    if (replay == NULL) {  /* a new stream: libsrtp takes the sequence number as the index, unchecked */
        est = seq;
        delta = seq;
    } else {
        delta = estimate_index(replay->index, &est, seq);
        if (delta <= 0) {
            if ((int64_t)self->window - 1 + delta < 0) Py_RETURN_NONE;   /* replay_old */
            if (replay_bit(self, replay, replay->index + (uint64_t)(int64_t)delta)) Py_RETURN_NONE;  /* replay */
        }
    }
    uint32_t roc = (uint32_t)(est >> 16);
    uint8_t iv[SALT_LEN] = {0, 0, in[8], in[9], in[10], in[11],
                            (uint8_t)(roc >> 24), (uint8_t)(roc >> 16), (uint8_t)(roc >> 8), (uint8_t)roc,
                            in[2], in[3]};
    for (int i = 0; i < SALT_LEN; i++) iv[i] ^= self->salt[i];
    Py_ssize_t body = len - header - TAG_LEN;
    PyObject *result = PyBytes_FromStringAndSize(NULL, len - TAG_LEN);
    if (result == NULL) return NULL;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    if (!receiver_open(self, iv, in, header, body, out)) {
        Py_DECREF(result);
        Py_RETURN_NONE;  /* authentication failed */
    }
    if (replay == NULL) {
        replay = PyMem_Calloc(1, sizeof(Replay));
        uint32_t *bits = PyMem_Calloc((size_t)self->window / 32, sizeof(uint32_t));
        PyObject *capsule = NULL, *key = NULL;
        if (replay == NULL || bits == NULL) {
            PyMem_Free(replay);
            PyMem_Free(bits);
            Py_DECREF(result);
            return PyErr_NoMemory();
        }
        replay->bits = bits;
        capsule = PyCapsule_New(replay, NULL, replay_free);
        key = PyLong_FromUnsignedLong(ssrc);
        if (capsule == NULL || key == NULL || PyDict_SetItem(self->streams, key, capsule) < 0) {
            if (capsule == NULL) {
                PyMem_Free(bits);
                PyMem_Free(replay);
            }
            Py_XDECREF(capsule);
            Py_XDECREF(key);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(capsule);
        Py_DECREF(key);
    }
    replay_add(self, replay, delta);
    self->last = replay;
    self->last_ssrc = ssrc;
    memcpy(out, in, (size_t)header);
    return result;
}

static PyObject *Receiver_get_engine(Receiver *self, void *closure) {
    (void)closure;
    return engine_name(self->gcm, self->ctx);
}

static PyGetSetDef Receiver_getset[] = {
    {"engine", (getter)Receiver_get_engine, NULL, "the AES-GCM engine: vaes or openssl", NULL},
    {NULL}};

static PyMethodDef Receiver_methods[] = {
    {"unprotect", (PyCFunction)Receiver_unprotect, METH_O,
     "unprotect(packet: bytes) -> bytes | None: the RTP packet, or None (failed authentication, a replay)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "conf_crypto._srtp_gcm.Receiver",
    .tp_doc = "Receiver(key, salt, window, max_packet, engine=''): one link's inbound SRTP (AES-128-GCM).",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_methods = Receiver_methods,
    .tp_getset = Receiver_getset,
};

static PyMethodDef module_methods[] = {
    {"protect_many", protect_many, METH_VARARGS,
     "protect_many(senders, packet, out, stride, lengths) -> int: protect `packet` for each Sender in the "
     "tuple `senders` into slot i of `out` (at i * stride); lengths[i] (int32) is its SRTP length, or -1 "
     "where the sender refused. Returns how many were protected."},
    {NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_srtp_gcm",
                                       "SRTP AEAD_AES_128_GCM sending (RFC 7714) in one native call per batch.",
                                       -1, module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__srtp_gcm(void) {
    if (PyType_Ready(&StreamType) < 0 || PyType_Ready(&SenderType) < 0 || PyType_Ready(&ReceiverType) < 0)
        return NULL;
#ifdef GCM_VAES
    vaes_ok = gcm_vaes_available();
#endif
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    PyObject *engines = vaes_ok ? Py_BuildValue("(ss)", "vaes", "openssl") : Py_BuildValue("(s)", "openssl");
    if (engines == NULL || PyModule_AddObject(m, "ENGINES", engines) < 0) {
        Py_XDECREF(engines);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SenderType);
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(m, "Sender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
