"""Caller identity: virtual keys, the identities they map to, and what each identity may do.

Pure and standard library only, like routing/: the key stores that do I/O (a file, Redis) and the
gRPC interceptor that reads `authorization` metadata live beside their layers and call in here.
"""
