"""Codecs: one mapping of Handle values and answers to plain data, two encodings (REST JSON, msgpack)."""
