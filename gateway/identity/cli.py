"""`edgeloop pki|things|certs|policies|groups|types|cas …`: the CA and the registry from the command line.

Commands work on the data directory directly (SQLite, safe next to a running gateway, which notices the
changes). Descriptions print as JSON in AWS's shapes; listings print one row per item, or JSON with --json.
Certificate ids may be shortened to a unique prefix of at least 6 hexadecimal digits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from edgeloop.cli import AppContext
from gateway.identity.awserrors import InvalidRequest
from gateway.identity.pki import CertificateAuthority, load_certificate, validity_error
from gateway.identity.registry import DEFAULT_THING_POLICY, DeviceIdentity, Registry
from gateway.identity.store import Page
from gateway.storage.durable import atomic_write

F = TypeVar("F", bound=Callable[..., Any])


def _registry(app: AppContext) -> Registry:
    return Registry.open(app.config)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _rows(pages: Iterator[Page], columns: list[str], as_json: bool) -> None:
    items = [item for page in pages for item in page.items]
    if as_json:
        _echo_json(items)
        return
    for item in items:
        click.echo("  ".join(_cell(item.get(c, "-"), c) for c in columns))


def _cell(value: Any, column: str) -> str:
    return _timestamp(value) if column.endswith("Date") and isinstance(value, float) else str(value)


def _all_pages(fetch: Callable[[str | None], Page]) -> Iterator[Page]:
    token: str | None = None
    while True:
        page = fetch(token)
        yield page
        token = page.next_token
        if token is None:
            return


def _attributes(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidRequest(f"attribute {pair!r} must be written NAME=VALUE")
        out[name] = value
    return out


def _read_text(source: str) -> str:
    """The contents of a file, or of standard input for `-`."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise InvalidRequest(f"file {source} does not exist")
    return path.read_text()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of columns.")
attr_option = click.option("--attr", "attrs", multiple=True, metavar="NAME=VALUE", help="An attribute (repeatable).")


def _timestamp(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- pki ---------------------------------------------------------------------------------------------


@click.group()
def pki() -> None:
    """The gateway's certificate authority and TLS server certificate."""


@pki.command("init")
@click.option("--import-cert", type=click.Path(exists=True, dir_okay=False), help="Adopt this CA certificate…")
@click.option("--import-key", type=click.Path(exists=True, dir_okay=False), help="…and its private key.")
@click.option("--name", "names", multiple=True, help="Extra server certificate name (DNS name or IP; repeatable).")
@click.pass_obj
def pki_init(app: AppContext, import_cert: str | None, import_key: str | None, names: tuple[str, ...]) -> None:
    """Create the CA (or adopt an existing one) and the server certificate. Safe to run again."""
    if bool(import_cert) != bool(import_key):
        raise InvalidRequest("--import-cert and --import-key go together")
    pki_dir = app.config.home / "pki"
    if import_cert and import_key:
        CertificateAuthority.import_existing(
            pki_dir, app.config.pki, Path(import_cert).read_text(), Path(import_key).read_text()
        )
    with _registry(app) as registry:
        server = registry.server_certificate(names)
        click.echo(f"CA certificate     {pki_dir / 'ca.pem'}  (id {registry.ca.certificate_id})")
        click.echo(f"server certificate {server.cert_path}  for {', '.join(server.names)}")


@pki.command("show")
@click.option("--pem", is_flag=True, help="Print the CA certificate (PEM) for devices to trust.")
@click.pass_obj
def pki_show(app: AppContext, pem: bool) -> None:
    """Describe the CA and the server certificate."""
    ca = CertificateAuthority.open(app.config.home / "pki", app.config.pki, create=False)
    if pem:
        click.echo(ca.certificate_pem, nl=False)
        return
    cert = ca.certificate
    info: dict[str, Any] = {
        "ca": {"certificateId": ca.certificate_id, "subject": cert.subject.rfc4514_string(),
               "notBefore": _timestamp(cert.not_valid_before_utc.timestamp()),
               "notAfter": _timestamp(cert.not_valid_after_utc.timestamp()),
               "keyType": type(cert.public_key()).__name__.removeprefix("_"),
               "path": str(app.config.home / "pki" / "ca.pem")},
    }
    server_file = app.config.home / "pki" / "server.pem"
    if server_file.exists():
        server = load_certificate(server_file.read_bytes())
        info["server"] = {"subject": server.subject.rfc4514_string(), "path": str(server_file),
                          "notAfter": _timestamp(server.not_valid_after_utc.timestamp()),
                          "status": validity_error(server) or ("valid" if ca.issued(server) else "other-ca")}
    _echo_json(info)


# -- things ------------------------------------------------------------------------------------------


@click.group()
def things() -> None:
    """Things: create one with a ready device identity, list, describe, update, delete."""


def _write_identity(identity: DeviceIdentity, out: Path) -> None:
    files = identity.write(out)
    click.echo(f"thing {identity.thing_name}  certificate {identity.certificate_id}")
    for kind, path in files.items():
        click.echo(f"  {kind:<12} {path}")


@things.command("create")
@click.argument("name")
@click.option("--type", "thing_type", help="Thing type.")
@attr_option
@click.option("--group", "groups", multiple=True, help="Add to this static group (repeatable).")
@click.option("--policy", "policies", multiple=True,
              help=f"Policy to attach to the certificate (repeatable; default {DEFAULT_THING_POLICY}).")
@click.option("--csr", type=click.Path(exists=True, dir_okay=False), help="Sign this CSR instead of making a key.")
@click.option("--no-cert", is_flag=True, help="Create the registry entry only.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the identity files (default: .).")
@click.pass_obj
def things_create(
    app: AppContext, name: str, thing_type: str | None, attrs: tuple[str, ...], groups: tuple[str, ...],
    policies: tuple[str, ...], csr: str | None, no_cert: bool, out: str | None,
) -> None:
    """Create thing NAME with an ACTIVE certificate, its key, the CA certificate and a policy."""
    with _registry(app) as registry:
        if no_cert:
            with registry.store.transaction():
                registry.things.create(name, thing_type, _attributes(attrs))
                for group in groups:
                    registry.groups.add_thing(group, name)
            click.echo(f"thing {name}")
            return
        identity = registry.provision_thing(
            name, policies or (DEFAULT_THING_POLICY,), thing_type, _attributes(attrs), groups,
            Path(csr).read_text() if csr else None,
        )
    _write_identity(identity, Path(out or "."))


@things.command("create-fleet")
@click.argument("prefix")
@click.argument("count", type=click.IntRange(1, 100000))
@click.option("--policy", "policies", multiple=True, help=f"Policy to attach (default {DEFAULT_THING_POLICY}).")
@click.option("--group", "groups", multiple=True, help="Add every thing to this group (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), default="fleet", show_default=True)
@click.pass_obj
def things_create_fleet(
    app: AppContext, prefix: str, count: int, policies: tuple[str, ...], groups: tuple[str, ...], out: str
) -> None:
    """Create COUNT things PREFIX-0001… with identities, in one transaction, under OUT/<thing>/."""
    width = max(4, len(str(count)))
    names = [f"{prefix}-{i:0{width}d}" for i in range(1, count + 1)]
    with _registry(app) as registry:
        fleet = registry.provision_fleet(names, policies=policies or (DEFAULT_THING_POLICY,), groups=groups)
    for identity in fleet:
        identity.write(Path(out) / identity.thing_name, durable=False)
    os.sync()  # one flush for thousands of small files instead of an fsync each
    click.echo(f"{len(fleet)} things {names[0]} … {names[-1]} written under {out}/")


@things.command("list")
@click.option("--type", "thing_type", help="Only things of this type.")
@click.option("--attr", "attr", metavar="NAME[=VALUE]", help="Only things with this attribute (and value).")
@click.option("--prefix", is_flag=True, help="Match the attribute value as a prefix.")
@json_option
@click.pass_obj
def things_list(app: AppContext, thing_type: str | None, attr: str | None, prefix: bool, as_json: bool) -> None:
    """List things."""
    name, _, value = (attr or "").partition("=")
    with _registry(app) as registry:
        _rows(_all_pages(lambda token: registry.things.list(
            thing_type, name or None, value if attr and "=" in attr else None, prefix, token
        )), ["thingName", "thingTypeName", "version"], as_json)


@things.command("describe")
@click.argument("name")
@click.pass_obj
def things_describe(app: AppContext, name: str) -> None:
    """Describe a thing, with its certificates and groups."""
    with _registry(app) as registry:
        description = registry.things.describe(name)
        description["principals"] = registry.certs.thing_principals(name)
        description["thingGroups"] = registry.groups.groups_of(name)
    _echo_json(description)


@things.command("update")
@click.argument("name")
@click.option("--type", "thing_type", help="New thing type.")
@click.option("--remove-type", is_flag=True, help="Remove the thing type.")
@attr_option
@click.option("--merge", is_flag=True, help="Merge attributes (an empty value removes one) instead of replacing.")
@click.pass_obj
def things_update(
    app: AppContext, name: str, thing_type: str | None, remove_type: bool, attrs: tuple[str, ...], merge: bool
) -> None:
    """Change a thing's type or attributes."""
    with _registry(app) as registry:
        registry.things.update(name, thing_type, _attributes(attrs) if attrs else None, merge, remove_type)
        click.echo(f"thing {name} is at version {registry.things.describe(name)['version']}")


@things.command("delete")
@click.argument("name")
@click.option("--with-certs", is_flag=True,
              help="Also detach its certificates, and deactivate and delete those attached to no other thing.")
@click.pass_obj
def things_delete(app: AppContext, name: str, with_certs: bool) -> None:
    """Delete a thing (its certificates must be detached first, or use --with-certs)."""
    with _registry(app) as registry, registry.store.transaction():
        if with_certs:
            for principal in registry.certs.thing_principals(name):
                registry.certs.detach_thing(name, principal["principal"])
                if not registry.certs.principal_things(principal["principal"]):
                    cert_id = registry.arns.parse_principal(principal["principal"])
                    if registry.certs.status(cert_id) == "ACTIVE":
                        registry.certs.update_status(cert_id, "INACTIVE")
                    registry.certs.delete(cert_id, force=True)
        registry.things.delete(name)
    click.echo(f"deleted thing {name}")


@things.command("attach")
@click.argument("name")
@click.argument("certificate")
@click.option("--exclusive", is_flag=True, help="The certificate may be attached to this thing only.")
@click.pass_obj
def things_attach(app: AppContext, name: str, certificate: str, exclusive: bool) -> None:
    """Attach a certificate to a thing."""
    with _registry(app) as registry:
        registry.certs.attach_thing(name, registry.certs.resolve(certificate), exclusive)


@things.command("detach")
@click.argument("name")
@click.argument("certificate")
@click.pass_obj
def things_detach(app: AppContext, name: str, certificate: str) -> None:
    """Detach a certificate from a thing."""
    with _registry(app) as registry:
        registry.certs.detach_thing(name, registry.certs.resolve(certificate))


# -- certs -------------------------------------------------------------------------------------------


@click.group()
def certs() -> None:
    """Device certificates: create, register, activate, deactivate, revoke, delete."""


@certs.command("create")
@click.option("--csr", type=click.Path(exists=True, dir_okay=False), help="Sign this CSR instead of making a key.")
@click.option("--active", is_flag=True, help="Make it ACTIVE at once (default INACTIVE, as AWS does).")
@click.option("--cn", default="AWS IoT Certificate", show_default=True, help="Subject common name.")
@click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True)
@click.pass_obj
def certs_create(app: AppContext, csr: str | None, active: bool, cn: str, out: str) -> None:
    """Issue a certificate from the gateway CA; writes ID.cert.pem (and ID.private.key)."""
    with _registry(app) as registry:
        if csr:
            result = registry.certs.create_from_csr(Path(csr).read_text(), active)
        else:
            result = registry.certs.create_keys_and_certificate(active, cn)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    cert_id = result["certificateId"]
    atomic_write(directory / f"{cert_id[:10]}.cert.pem", result["certificatePem"].encode(), mode=0o644)
    if "keyPair" in result:
        atomic_write(directory / f"{cert_id[:10]}.private.key", result["keyPair"]["PrivateKey"].encode(), mode=0o600)
    click.echo(cert_id)


@certs.command("register")
@click.argument("certificate_file")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), help="The CA that signed it.")
@click.option("--active", is_flag=True, help="Register it ACTIVE (default INACTIVE).")
@click.pass_obj
def certs_register(app: AppContext, certificate_file: str, ca_cert: str | None, active: bool) -> None:
    """Register a certificate signed by the gateway CA or a registered CA (`-` reads standard input)."""
    with _registry(app) as registry:
        result = registry.certs.register(
            _read_text(certificate_file), Path(ca_cert).read_text() if ca_cert else None,
            "ACTIVE" if active else "INACTIVE",
        )
    click.echo(result["certificateId"])


@certs.command("list")
@click.option("--ca", "ca_id", help="Only certificates issued by this CA (id or prefix).")
@json_option
@click.pass_obj
def certs_list(app: AppContext, ca_id: str | None, as_json: bool) -> None:
    """List certificates: id, status, creation time."""
    with _registry(app) as registry:
        if ca_id is not None:
            own = registry.ca.certificate_id
            ca_id = own if own.startswith(ca_id.lower()) else registry.certs.resolve(ca_id, ca=True)
        _rows(_all_pages(lambda token: registry.certs.list(ca_id, token)),
              ["certificateId", "status", "creationDate"], as_json)


@certs.command("describe")
@click.argument("certificate")
@click.option("--pem", is_flag=True, help="Print only the certificate PEM.")
@click.pass_obj
def certs_describe(app: AppContext, certificate: str, pem: bool) -> None:
    """Describe a certificate, with its things and policies."""
    with _registry(app) as registry:
        description = registry.certs.describe(registry.certs.resolve(certificate))
        if pem:
            click.echo(description["certificatePem"], nl=False)
            return
        description["things"] = registry.certs.principal_things(description["certificateId"])
        description["policies"] = registry.policies.attached_to(description["certificateArn"])
    _echo_json(description)


def _status_command(name: str, status: str, help_text: str) -> None:
    @certs.command(name, help=help_text)
    @click.argument("certificate")
    @click.pass_obj
    def command(app: AppContext, certificate: str) -> None:
        with _registry(app) as registry:
            cert_id = registry.certs.resolve(certificate)
            registry.certs.update_status(cert_id, status)
        click.echo(f"certificate {cert_id} is {status}")


_status_command("activate", "ACTIVE", "Make a certificate ACTIVE: it may connect.")
_status_command("deactivate", "INACTIVE", "Make a certificate INACTIVE: it may not connect.")
_status_command("revoke", "REVOKED", "Revoke a certificate for good.")


@certs.command("delete")
@click.argument("certificate")
@click.option("--force", is_flag=True, help="Also detach its policies.")
@click.pass_obj
def certs_delete(app: AppContext, certificate: str, force: bool) -> None:
    """Delete an INACTIVE or REVOKED certificate that no thing uses."""
    with _registry(app) as registry:
        cert_id = registry.certs.resolve(certificate)
        registry.certs.delete(cert_id, force)
    click.echo(f"deleted certificate {cert_id}")


# -- policies ----------------------------------------------------------------------------------------


@click.group()
def policies() -> None:
    """AWS IoT policies: documents, versions, and what they are attached to."""


@policies.command("create")
@click.argument("name")
@click.argument("document_file")
@click.pass_obj
def policies_create(app: AppContext, name: str, document_file: str) -> None:
    """Create policy NAME from a JSON document file (`-` reads standard input)."""
    with _registry(app) as registry:
        registry.policies.create(name, _read_text(document_file))
    click.echo(f"policy {name} version 1")


@policies.command("get")
@click.argument("name")
@click.option("--version", "version_id", help="A specific version (default: the default version).")
@click.pass_obj
def policies_get(app: AppContext, name: str, version_id: str | None) -> None:
    """Show a policy and its document."""
    with _registry(app) as registry:
        result = registry.policies.get_version(name, version_id) if version_id else registry.policies.get(name)
    result["policyDocument"] = json.loads(result["policyDocument"])
    _echo_json(result)


@policies.command("list")
@json_option
@click.pass_obj
def policies_list(app: AppContext, as_json: bool) -> None:
    """List policies."""
    with _registry(app) as registry:
        _rows(_all_pages(lambda token: registry.policies.list(token)), ["policyName"], as_json)


@policies.command("delete")
@click.argument("name")
@click.pass_obj
def policies_delete(app: AppContext, name: str) -> None:
    """Delete a policy attached to nothing and without other versions."""
    with _registry(app) as registry:
        registry.policies.delete(name)
    click.echo(f"deleted policy {name}")


@policies.command("versions")
@click.argument("name")
@click.pass_obj
def policies_versions(app: AppContext, name: str) -> None:
    """List a policy's versions (newest first; * marks the default)."""
    with _registry(app) as registry:
        for version in registry.policies.list_versions(name):
            mark = "*" if version["isDefaultVersion"] else " "
            click.echo(f"{mark} {version['versionId']}  {_timestamp(version['createDate'])}")


@policies.command("create-version")
@click.argument("name")
@click.argument("document_file")
@click.option("--default", "set_default", is_flag=True, help="Make it the default version.")
@click.pass_obj
def policies_create_version(app: AppContext, name: str, document_file: str, set_default: bool) -> None:
    """Add a version (at most 5) to a policy."""
    with _registry(app) as registry:
        result = registry.policies.create_version(name, _read_text(document_file), set_default)
    click.echo(f"policy {name} version {result['policyVersionId']}{' (default)' if set_default else ''}")


@policies.command("set-default")
@click.argument("name")
@click.argument("version_id")
@click.pass_obj
def policies_set_default(app: AppContext, name: str, version_id: str) -> None:
    """Make VERSION_ID the policy's default version (roll forward or back)."""
    with _registry(app) as registry:
        registry.policies.set_default_version(name, version_id)


@policies.command("delete-version")
@click.argument("name")
@click.argument("version_id")
@click.pass_obj
def policies_delete_version(app: AppContext, name: str, version_id: str) -> None:
    """Delete a version that is not the default."""
    with _registry(app) as registry:
        registry.policies.delete_version(name, version_id)


def _target(registry: Registry, cert: str | None, group: str | None) -> str:
    if bool(cert) == bool(group):
        raise InvalidRequest("give exactly one target: --cert ID or --group NAME")
    return registry.arns.cert(registry.certs.resolve(cert)) if cert else registry.arns.thing_group(str(group))


def _attachment_command(name: str, help_text: str) -> None:
    @policies.command(name, help=help_text)
    @click.argument("policy")
    @click.option("--cert", help="A certificate id (or unique prefix).")
    @click.option("--group", help="A thing group name.")
    @click.pass_obj
    def command(app: AppContext, policy: str, cert: str | None, group: str | None) -> None:
        with _registry(app) as registry:
            target = _target(registry, cert, group)
            getattr(registry.policies, name)(policy, target)
        click.echo(f"{name}ed policy {policy} {'to' if name == 'attach' else 'from'} {target}")


_attachment_command("attach", "Attach a policy to a certificate or a thing group.")
_attachment_command("detach", "Detach a policy from a certificate or a thing group.")


@policies.command("targets")
@click.argument("name")
@click.pass_obj
def policies_targets(app: AppContext, name: str) -> None:
    """List the certificates and thing groups a policy is attached to."""
    with _registry(app) as registry:
        for target in registry.policies.targets(name):
            click.echo(target)


# -- groups ------------------------------------------------------------------------------------------


@click.group()
def groups() -> None:
    """Static thing groups: their hierarchy and members."""


@groups.command("create")
@click.argument("name")
@click.option("--parent", help="Parent group.")
@click.option("--description", help="Free text.")
@attr_option
@click.pass_obj
def groups_create(
    app: AppContext, name: str, parent: str | None, description: str | None, attrs: tuple[str, ...]
) -> None:
    """Create a thing group."""
    with _registry(app) as registry:
        registry.groups.create(name, parent, description, _attributes(attrs))
    click.echo(f"thing group {name}")


@groups.command("list")
@click.option("--parent", help="Only direct children of this group.")
@json_option
@click.pass_obj
def groups_list(app: AppContext, parent: str | None, as_json: bool) -> None:
    """List thing groups."""
    with _registry(app) as registry:
        _rows(_all_pages(lambda token: registry.groups.list(parent, None, token)), ["groupName"], as_json)


@groups.command("describe")
@click.argument("name")
@click.pass_obj
def groups_describe(app: AppContext, name: str) -> None:
    """Describe a group, with its policies."""
    with _registry(app) as registry:
        description = registry.groups.describe(name)
        description["policies"] = registry.policies.attached_to(description["thingGroupArn"])
    _echo_json(description)


@groups.command("delete")
@click.argument("name")
@click.pass_obj
def groups_delete(app: AppContext, name: str) -> None:
    """Delete a group without child groups."""
    with _registry(app) as registry:
        registry.groups.delete(name)
    click.echo(f"deleted thing group {name}")


@groups.command("add-thing")
@click.argument("group")
@click.argument("thing")
@click.pass_obj
def groups_add_thing(app: AppContext, group: str, thing: str) -> None:
    """Add a thing to a group."""
    with _registry(app) as registry:
        registry.groups.add_thing(group, thing)


@groups.command("remove-thing")
@click.argument("group")
@click.argument("thing")
@click.pass_obj
def groups_remove_thing(app: AppContext, group: str, thing: str) -> None:
    """Remove a thing from a group."""
    with _registry(app) as registry:
        registry.groups.remove_thing(group, thing)


@groups.command("things")
@click.argument("group")
@click.option("--recursive", is_flag=True, help="Include things of descendant groups.")
@click.pass_obj
def groups_things(app: AppContext, group: str, recursive: bool) -> None:
    """List the things in a group."""
    with _registry(app) as registry:
        for thing in registry.groups.things_in(group, recursive):
            click.echo(thing)


# -- thing types -------------------------------------------------------------------------------------


@click.group("types")
def thing_types() -> None:
    """Thing types: create, describe, deprecate, delete."""


@thing_types.command("create")
@click.argument("name")
@click.option("--description", help="Free text.")
@click.option("--searchable", multiple=True, help="A searchable attribute name (at most 3).")
@click.pass_obj
def types_create(app: AppContext, name: str, description: str | None, searchable: tuple[str, ...]) -> None:
    """Create a thing type."""
    with _registry(app) as registry:
        registry.types.create(name, description, list(searchable))
    click.echo(f"thing type {name}")


@thing_types.command("list")
@json_option
@click.pass_obj
def types_list(app: AppContext, as_json: bool) -> None:
    """List thing types."""
    with _registry(app) as registry:
        items = [item for page in _all_pages(lambda token: registry.types.list(token)) for item in page.items]
    if as_json:
        _echo_json(items)
        return
    for item in items:
        click.echo(f"{item['thingTypeName']}  {'deprecated' if item['thingTypeMetadata']['deprecated'] else '-'}")


@thing_types.command("describe")
@click.argument("name")
@click.pass_obj
def types_describe(app: AppContext, name: str) -> None:
    """Describe a thing type."""
    with _registry(app) as registry:
        _echo_json(registry.types.describe(name))


@thing_types.command("deprecate")
@click.argument("name")
@click.option("--undo", is_flag=True, help="Make the type usable again.")
@click.pass_obj
def types_deprecate(app: AppContext, name: str, undo: bool) -> None:
    """Deprecate a thing type: no new thing may use it."""
    with _registry(app) as registry:
        registry.types.deprecate(name, undo)


@thing_types.command("delete")
@click.argument("name")
@click.pass_obj
def types_delete(app: AppContext, name: str) -> None:
    """Delete a deprecated thing type that no thing uses."""
    with _registry(app) as registry:
        registry.types.delete(name)
    click.echo(f"deleted thing type {name}")


# -- external CAs ------------------------------------------------------------------------------------


@click.group()
def cas() -> None:
    """External CAs (bring your own CA): their device certificates can be registered or auto-registered."""


@cas.command("register")
@click.argument("ca_file")
@click.option("--active", is_flag=True, help="Register it ACTIVE (default INACTIVE).")
@click.option("--auto-register/--no-auto-register", default=None,
              help="Register unknown certificates it signed on first connect (default: pki.auto_register).")
@click.pass_obj
def cas_register(app: AppContext, ca_file: str, active: bool, auto_register: bool | None) -> None:
    """Register a CA certificate (PEM file, `-` for standard input)."""
    with _registry(app) as registry:
        result = registry.certs.register_ca(_read_text(ca_file), active, auto_register)
    click.echo(result["certificateId"])


@cas.command("list")
@json_option
@click.pass_obj
def cas_list(app: AppContext, as_json: bool) -> None:
    """List registered CAs."""
    with _registry(app) as registry:
        _rows(_all_pages(lambda token: registry.certs.list_cas(token)), ["certificateId", "status"], as_json)


@cas.command("describe")
@click.argument("ca_id")
@click.pass_obj
def cas_describe(app: AppContext, ca_id: str) -> None:
    """Describe a registered CA."""
    with _registry(app) as registry:
        _echo_json(registry.certs.describe_ca(registry.certs.resolve(ca_id, ca=True)))


@cas.command("update")
@click.argument("ca_id")
@click.option("--status", type=click.Choice(["ACTIVE", "INACTIVE"]), help="New status.")
@click.option("--auto-register/--no-auto-register", default=None, help="Turn auto-registration on or off.")
@click.pass_obj
def cas_update(app: AppContext, ca_id: str, status: str | None, auto_register: bool | None) -> None:
    """Change a CA's status or auto-registration."""
    with _registry(app) as registry:
        registry.certs.update_ca(registry.certs.resolve(ca_id, ca=True), status, auto_register)


@cas.command("delete")
@click.argument("ca_id")
@click.pass_obj
def cas_delete(app: AppContext, ca_id: str) -> None:
    """Delete an INACTIVE CA."""
    with _registry(app) as registry:
        full_id = registry.certs.resolve(ca_id, ca=True)
        registry.certs.delete_ca(full_id)
    click.echo(f"deleted CA certificate {full_id}")
