"""The plugin interfaces: hook specifications, the registry, transports, the TCP/TLS stream, services,
ciphers, injectors and lazily imported parts. Plugin authors import these names from :mod:`conf_cli`."""
