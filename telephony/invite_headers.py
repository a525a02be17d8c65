"""Headers of an incoming INVITE as pjsua2 hands it over (the raw message text): who calls, and what Kamailio adds."""

from __future__ import annotations

import re

FROM_URI_RE = re.compile(r"<((?:sips?|tel):[^>]+)>|^\s*((?:sips?|tel):[^;\s]+)")


def header(message: str, name: str) -> str | None:
    prefix = name.lower() + ":"
    for line in message.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        if line.lower().startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def caller_uri(message: str) -> str | None:
    """The calling party's URI from the INVITE's From header (the callback number and the rules' "calls today"
    need the caller, not the address of the trunk that relayed the call)."""
    value = header(message, "From") or header(message, "f")
    if value is None:
        return None
    match = FROM_URI_RE.search(value)
    return (match.group(1) or match.group(2)) if match else None
