"""Codecs: one mapping of Handle values and messages to plain dicts (REST JSON shape), two encodings (JSON, msgpack).

`fields` reads untrusted decoded data, `data` maps value data formats, `mapping` whole values, `codec` bodies,
responses and requests.
The native Handle protocol (RFC 3652 binary messages over UDP/TCP) has its own codec in `wire.native`.
"""
