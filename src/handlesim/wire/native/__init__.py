"""The native Handle protocol (RFC 3651/3652 as Handle.Net v9 speaks it): envelope, header, bodies, credentials,
UDP packets and TCP framing, and the mapping onto the core's Request/Response. Pure: bytes in, values out.

    envelope.py    the 20-byte Message Envelope            header.py      the 24-byte header, OpFlag, message parts
    records.py     handle values, HS_SITE/HS_ADMIN/HS_VLIST  body.py        bodies per operation and response code
    credential.py  challenge answers, credential section    packets.py     UDP split/reassembly, TCP stream framing
    mapping.py     native messages <-> core Request/Response
"""
