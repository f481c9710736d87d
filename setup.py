"""The compiled parts of conf: everything else is in pyproject.toml.

Three small C extensions, each with a pure-Python fallback that gives the same bytes on the wire (slower):
the rtp:// server's batched UDP sends (sendmmsg), SRTP AEAD_AES_128_GCM protection for many receivers
in one call (AES-GCM with AVX-512 VAES where the CPU has it, else OpenSSL's libcrypto), and the zmq://
server's CURVE frames (a whole MESSAGE frame in one call, libsodium). A fourth is
``conf bench --generator compiled``'s media loop (sendmmsg, recvmmsg; Linux). ``make setup`` builds them
(scripts/setup-system.sh installs a C compiler and the OpenSSL and libsodium headers).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "conf_transport_udp_rtp._sendmany",
            ["plugins/transport_udp_rtp/conf_transport_udp_rtp/_sendmany.c"],
        ),
        Extension("conf_cli.bench._blast", ["conf_cli/bench/_blast.c"]),
        Extension(
            "conf_crypto._srtp_gcm",
            ["plugins/crypto/conf_crypto/_srtp_gcm.c"],
            depends=["plugins/crypto/conf_crypto/_gcm_vaes.h"],
            libraries=["crypto"],
        ),
        Extension(
            "conf_transport_zmq._seal",
            ["plugins/transport_zmq/conf_transport_zmq/_seal.c"],
            libraries=["sodium"],
        ),
    ]
)
