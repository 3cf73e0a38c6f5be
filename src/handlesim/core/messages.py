"""Requests and responses exchanged with a node, as immutable values (both encodings map onto these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .codes import OpCode, ResponseCode
from .handle import Handle, Prefix
from .values import PREFIX_SITE_TYPES, SITE_TYPES, HandleValue, SiteInfo, ValueReference, sites_from_values


@dataclass(frozen=True, slots=True)
class Request:
    """One operation asked of a node.

    `identity` is set by the adapter only after it authenticated the caller (the core never sees secrets).
    """

    op: OpCode
    handle: Handle | None = None
    types: tuple[str, ...] = ()
    indexes: tuple[int, ...] = ()
    values: tuple[HandleValue, ...] = ()
    identity: ValueReference | None = None
    authoritative: bool = False
    public_only: bool = True
    overwrite: bool = True
    mint_new_suffix: bool = False
    recursive: bool = True  # REST GETs may be resolved for the client; node-to-node walk steps say False
    prefix: Prefix | None = None  # LIST_HANDLES, HOME_NA, UNHOME_NA
    page: int = 0
    page_size: int = 0  # 0: everything
    hops: int = 0  # referrals already followed by whoever sends this (recursion guard)

    @property
    def handle_text(self) -> str:
        if self.handle is not None:
            return self.handle.text
        return self.prefix.text if self.prefix is not None else ""


@dataclass(frozen=True, slots=True)
class Response:
    """A node's answer. `values` carries resolved values, or, for referrals, the site values to follow."""

    code: ResponseCode | int
    handle: str = ""
    values: tuple[HandleValue, ...] = ()
    message: str = ""
    handles: tuple[str, ...] = ()  # LIST_HANDLES page, LIST_HOMED_NAS
    total_count: int = 0
    listing: bool = False  # an answer to LIST_HANDLES / LIST_HOMED_NAS (`handle` is then the prefix)
    created: bool = False  # success of a create/add done with overwrite off (HTTP 201)
    extra: dict[str, object] = field(default_factory=dict, compare=False)  # e.g. a resolver's trace

    @property
    def ok(self) -> bool:
        return self.code == ResponseCode.SUCCESS

    def referral_sites(self) -> list[SiteInfo]:
        """Sites named by a prefix referral (HS_SITE.PREFIX) or service referral (HS_SITE)."""
        if self.code == ResponseCode.PREFIX_REFERRAL:
            return sites_from_values(self.values, PREFIX_SITE_TYPES)
        return sites_from_values(self.values, SITE_TYPES + PREFIX_SITE_TYPES)


def error_response(code: ResponseCode | int, message: str, handle: str = "") -> Response:
    return Response(code=code, handle=handle, message=message)
