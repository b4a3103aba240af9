"""Where virtual keys live: one `KeyStore` interface, a file backend and a Redis backend."""
