"""Compose names made valid for Kubernetes.

Compose accepts names Kubernetes refuses ("My_Service.v2", 80-character project
volume names, a service called "1api"). Each function maps a Compose name onto the
rule of the field it goes to, deterministically, so that the same service always
lands on the same objects; a name that has to be shortened gets a hash of the
original so two long names never collide.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
PORT_NAME_MAX = 15

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
_NOT_DATA_KEY = re.compile(r"[^A-Za-z0-9._-]+")
# What apiserver validation calls a qualified name (label and annotation keys).
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def _shorten(text: str, original: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 7].rstrip('-._')}-{_digest(original)}"


def kube_name(*parts: str) -> str:
    """An RFC 1035 label (lowercase alphanumerics and '-', starting with a letter,
    at most 63): valid for every kind we make, Services included, which are the
    strictest. "My_Service.v2" -> "my-service-v2"; "1api" -> "x-1api"."""
    original = "-".join(parts)
    text = _DASHES.sub("-", _NOT_DNS.sub("-", original.lower())).strip("-")
    if not text or not text[0].isalpha():
        # Service names must start with a letter; a prefix keeps the digits readable.
        text = f"x-{text}".rstrip("-")
    return _shorten(text, original, DNS_LABEL_MAX).rstrip("-")


def label_value(value: str) -> str:
    """A label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    text = _LABEL_EDGE.sub("", _NOT_LABEL_VALUE.sub("-", value))
    return _LABEL_EDGE.sub("", _shorten(text, value, DNS_LABEL_MAX))


def data_key(name: str) -> str:
    """A ConfigMap/Secret data key ([-._a-zA-Z0-9]+, at most 253)."""
    text = _NOT_DATA_KEY.sub("_", name).strip(".") or "value"
    return _shorten(text, name, 253)


def port_name(protocol: str, port: int, wanted: str | None = None) -> str:
    """An IANA service name (at most 15, lowercase alphanumerics and single dashes,
    at least one letter): Compose's own port name when it fits, else "tcp-8080"."""
    if wanted:
        text = _DASHES.sub("-", _NOT_DNS.sub("-", wanted.lower())).strip("-")
        if len(text) <= PORT_NAME_MAX and _IANA_SVC_NAME.fullmatch(text) and re.search("[a-z]", text):
            return text
    return f"{protocol.lower()}-{port}"


def is_qualified_key(key: str) -> bool:
    """Whether `key` may be a label/annotation key: [prefix/]name, the prefix a DNS
    subdomain of at most 253, the name a qualified name of at most 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= DNS_LABEL_MAX and bool(_QUALIFIED_NAME.fullmatch(name))
