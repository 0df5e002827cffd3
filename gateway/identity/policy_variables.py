"""Policy variables (`${iot:ClientId}`, ...) and condition keys, resolved against a `Principal`.

A key resolves to a tuple of strings or to None when the principal has no value for it. Certificate values
follow AWS's limits: at most five values per attribute, and a value with a wildcard character (`*$+?#`) or
longer than 1024 characters is never substituted into a policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.identity.policy_glob import Glob, normalize, parse_glob
from gateway.identity.policy_principal import Principal

DN_ATTRIBUTES = (
    "CommonName", "Organization", "OrganizationalUnit", "Country", "State", "SerialNumber", "Title",
    "Surname", "GivenName", "Initials", "Pseudonym", "GenerationQualifier", "DistinguishedNameQualifier",
)  # fmt: skip
ALT_NAME_KINDS = ("RFC822Name", "DNSName", "DirectoryName", "UniformResourceIdentifier", "IPAddress")
MAX_CERT_VALUES = 5
MAX_CERT_VALUE_CHARS = 1024
CERT_WILDCARDS = frozenset("*$+?#")
SPECIAL_CHARACTERS = {"*": "*", "?": "?", "$": "$"}

PLAIN_KEYS = {
    "iot:ClientId": "client_id",
    "iot:CertificateId": "certificate_id",
    "aws:SourceIp": "source_ip",
    "iot:Connection.Thing.ThingName": "thing_name",
    "iot:Connection.Thing.ThingTypeName": "thing_type",
    "iot:Connection.Thing.IsAttached": "is_attached",
    "iot:Certificate.SerialNumber": "serial_number",
    "iot:Certificate.AvailableKeys": "available_keys",
}
_CERT_SECTIONS = {
    "iot:Certificate.Subject.AlternativeName.": ("subject_alt_names", ALT_NAME_KINDS),
    "iot:Certificate.Issuer.AlternativeName.": ("issuer_alt_names", ALT_NAME_KINDS),
    "iot:Certificate.Subject.": ("subject", DN_ATTRIBUTES),
    "iot:Certificate.Issuer.": ("issuer", DN_ATTRIBUTES),
}
_ATTRIBUTES_PREFIX = "iot:Connection.Thing.Attributes["
ALLOWED_KEYS_HELP = (
    "iot:ClientId, iot:CertificateId, aws:SourceIp, iot:Connection.Thing.{ThingName,ThingTypeName,IsAttached}, "
    "iot:Connection.Thing.Attributes[name], iot:Certificate.{Subject,Issuer}.<"
    + "|".join(DN_ATTRIBUTES)
    + ">[.N|.List], iot:Certificate.{Subject,Issuer}.AlternativeName.<"
    + "|".join(ALT_NAME_KINDS)
    + ">[.N|.List], iot:Certificate.SerialNumber, iot:Certificate.AvailableKeys"
)

LIST = -1  # selector of `.List` keys: every value
FIRST = 0  # selector of plain certificate keys: the first value


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed variable or condition key: what it reads (`source`, `arg`) and which value (`selector`)."""

    name: str
    source: str
    arg: str | None = None
    selector: int = FIRST

    @property
    def is_list(self) -> bool:
        """Whether the key holds several values (only usable with ForAllValues:/ForAnyValue:)."""
        return self.selector == LIST or self.source == "available_keys"

    @property
    def is_certificate(self) -> bool:
        return self.source in _CERT_FIELDS or self.source == "serial_number"

    def values(self, principal: Principal) -> tuple[str, ...] | None:
        """The key's values for `principal`; None when it has none."""
        source = self.source
        if source in _CERT_FIELDS:
            mapping: Mapping[str, tuple[str, ...]] = getattr(principal, source)
            found = _cert_values(mapping.get(self.arg or ""))
            if not found:
                return None
            if self.selector == LIST:
                return found
            index = 0 if self.selector == FIRST else self.selector - 1
            return (found[index],) if index < len(found) else None
        if source == "thing_attribute":
            value = principal.thing_attributes.get(self.arg or "")
            return None if value is None else (value,)
        if source == "is_attached":
            return ("true" if principal.is_attached else "false",)
        if source == "available_keys":
            return available_keys(principal)
        value = getattr(principal, source)
        return None if value is None else (value,)

    def text(self, principal: Principal) -> str | None:
        """The single value substituted for `${name}`; None when unresolved or not substitutable."""
        found = self.values(principal)
        if not found or self.is_list:
            return None
        value = found[0]
        if self.is_certificate and (len(value) > MAX_CERT_VALUE_CHARS or not CERT_WILDCARDS.isdisjoint(value)):
            return None
        return value


_CERT_FIELDS = frozenset({"subject", "issuer", "subject_alt_names", "issuer_alt_names"})


def _cert_values(values: tuple[str, ...] | None) -> tuple[str, ...]:
    return tuple(values[:MAX_CERT_VALUES]) if values else ()


def available_keys(principal: Principal) -> tuple[str, ...]:
    """Names of the certificate variables that have a value (`iot:Certificate.AvailableKeys`)."""
    keys: list[str] = []
    for prefix, (source, _) in _CERT_SECTIONS.items():
        mapping: Mapping[str, tuple[str, ...]] = getattr(principal, source)
        keys.extend(prefix + attr for attr, values in mapping.items() if values)
    if principal.serial_number is not None:
        keys.append("iot:Certificate.SerialNumber")
    return tuple(keys)


def parse_key(name: str) -> KeyRef:
    """Parse a variable or condition key name; ValueError names what is allowed."""
    if name in PLAIN_KEYS:
        return KeyRef(name, PLAIN_KEYS[name])
    if name.startswith(_ATTRIBUTES_PREFIX) and name.endswith("]") and len(name) > len(_ATTRIBUTES_PREFIX) + 1:
        return KeyRef(name, "thing_attribute", name[len(_ATTRIBUTES_PREFIX) : -1])
    for prefix, (source, attributes) in _CERT_SECTIONS.items():
        if name.startswith(prefix):
            return _parse_cert_key(name, source, name[len(prefix) :], attributes)
    raise ValueError(f"unknown policy variable or condition key {name!r}; allowed: {ALLOWED_KEYS_HELP}")


def _parse_cert_key(name: str, source: str, rest: str, attributes: tuple[str, ...]) -> KeyRef:
    attr, _, suffix = rest.partition(".")
    if attr not in attributes:
        raise ValueError(f"unknown certificate attribute {attr!r} in {name!r}; allowed: {', '.join(attributes)}")
    if not suffix:
        return KeyRef(name, source, attr, FIRST)
    if suffix == "List":
        return KeyRef(name, source, attr, LIST)
    if suffix.isdigit() and int(suffix) >= 1:
        return KeyRef(name, source, attr, int(suffix))
    raise ValueError(f"bad suffix {suffix!r} in {name!r}; allowed: none, .N (1-based index) or .List")


@dataclass(frozen=True, slots=True)
class Literal:
    """Text that is matched literally even in a glob (from `${*}`, `${?}`, `${$}`)."""

    text: str


Part = str | Literal | KeyRef


@dataclass(frozen=True, slots=True)
class Template:
    """A policy string split into raw text (wildcards active), literals and variables."""

    source: str
    parts: tuple[Part, ...]
    static: Glob | None = None  # the glob, precomputed when there are no variables

    @property
    def has_variables(self) -> bool:
        return any(isinstance(p, KeyRef) for p in self.parts)

    def glob(self, principal: Principal | None = None) -> Glob | None:
        """The glob for `principal` (variable values are literal); None if a variable is unresolved."""
        if self.static is not None:
            return self.static
        tokens: list = []
        for part in self.parts:
            if isinstance(part, str):
                tokens.extend(parse_glob(part))
            elif isinstance(part, Literal):
                tokens.append(part.text)
            else:
                value = part.text(principal) if principal is not None else None
                if value is None:
                    return None
                tokens.append(value)
        return normalize(tokens)

    def text(self, principal: Principal | None = None) -> str | None:
        """The plain string for `principal`; None if a variable is unresolved."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, KeyRef):
                value = part.text(principal) if principal is not None else None
                if value is None:
                    return None
                out.append(value)
            else:
                out.append(part if isinstance(part, str) else part.text)
        return "".join(out)


def parse_template(source: str, *, variables: bool = True) -> Template:
    """Split `source` at `${...}`; with `variables=False` (policy version 2008-10-17) it is all raw text."""
    if not variables or "${" not in source:
        return Template(source, (source,) if source else (), parse_glob(source))
    parts: list[Part] = []
    pos = 0
    while True:
        start = source.find("${", pos)
        if start < 0:
            break
        end = source.find("}", start + 2)
        if end < 0:
            raise ValueError(f"unterminated policy variable at offset {start} in {source!r}; write ${{name}}")
        if start > pos:
            parts.append(source[pos:start])
        name = source[start + 2 : end].strip()
        if name in SPECIAL_CHARACTERS:
            parts.append(Literal(SPECIAL_CHARACTERS[name]))
        else:
            key = parse_key(name)
            if key.is_list:
                raise ValueError(
                    f"${{{name}}} holds several values and cannot be substituted; "
                    "use it as a condition key with ForAllValues:/ForAnyValue:"
                )
            parts.append(key)
        pos = end + 1
    if pos < len(source):
        parts.append(source[pos:])
    template = Template(source, tuple(parts))
    return template if template.has_variables else Template(source, template.parts, template.glob())
