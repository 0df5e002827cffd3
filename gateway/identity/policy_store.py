"""AWS IoT policies: named, versioned JSON documents and their targets (certificates and thing groups).

Documents are checked with the policy engine's parser before they are stored; evaluating them is the
engine's job (`gateway.identity.policy`).
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from gateway.identity import names
from gateway.identity.awserrors import (
    DeleteConflict,
    InvalidRequest,
    MalformedPolicy,
    ResourceAlreadyExists,
    ResourceNotFound,
    VersionsLimitExceeded,
)
from gateway.identity.errors import PolicyError
from gateway.identity.policy_document import PolicyDocument
from gateway.identity.store import Page, Store, require

MAX_VERSIONS = 5


def check_document(document: str | dict[str, Any]) -> str:
    """The document as JSON text after checking it with the policy engine's parser (`MalformedPolicy` if wrong)."""
    text = document if isinstance(document, str) else json.dumps(document)
    try:
        PolicyDocument.parse(text)
    except PolicyError as exc:
        raise MalformedPolicy(str(exc)) from exc
    return text


class Policies:
    """Create, version, attach and detach policies."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.arns = store.arns

    def create(self, name: str, document: str | dict[str, Any]) -> dict[str, Any]:
        names.policy_name(name)
        text = check_document(document)
        now = self.store.now()
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM policies WHERE name = ?", (name,)).fetchone():
                raise ResourceAlreadyExists(f"policy {name} already exists")
            db.execute("INSERT INTO policies VALUES (?, 1, 2, ?, ?)", (name, now, now))
            db.execute("INSERT INTO policy_versions VALUES (?, 1, ?, ?)", (name, text, now))
        return {"policyName": name, "policyArn": self.arns.policy(name), "policyDocument": text,
                "policyVersionId": "1"}

    def get(self, name: str) -> dict[str, Any]:
        with self.store.transaction(write=False) as db:
            row = self._row(db, name)
            version = db.execute(
                "SELECT document FROM policy_versions WHERE policy = ? AND version = ?",
                (name, row["default_version"]),
            ).fetchone()
        return {
            "policyName": name, "policyArn": self.arns.policy(name), "policyDocument": version["document"],
            "defaultVersionId": str(row["default_version"]), "creationDate": row["created"],
            "lastModifiedDate": row["modified"], "generationId": str(row["default_version"]),
        }

    def document(self, name: str) -> str:
        """The default version's document (JSON text)."""
        return str(self.get(name)["policyDocument"])

    def list(self, next_token: str | None = None, max_results: int | None = None) -> Page:
        rows, token = self.store.page(
            "SELECT name FROM policies", "name", next_token=next_token, max_results=max_results
        )
        return Page([{"policyName": r["name"], "policyArn": self.arns.policy(r["name"])} for r in rows], token)

    def delete(self, name: str) -> None:
        with self.store.transaction() as db:
            self._row(db, name)
            if db.execute("SELECT 1 FROM policy_targets WHERE policy = ?", (name,)).fetchone():
                raise DeleteConflict(f"policy {name} is attached to a certificate or thing group: detach it first")
            versions = db.execute("SELECT COUNT(*) FROM policy_versions WHERE policy = ?", (name,)).fetchone()[0]
            if versions > 1:
                raise DeleteConflict(f"policy {name} has {versions - 1} non-default version(s): delete them first")
            db.execute("DELETE FROM policy_versions WHERE policy = ?", (name,))
            db.execute("DELETE FROM policies WHERE name = ?", (name,))

    def create_version(self, name: str, document: str | dict[str, Any], set_as_default: bool = False) -> dict[str, Any]:
        text = check_document(document)
        now = self.store.now()
        with self.store.transaction() as db:
            row = self._row(db, name)
            count = db.execute("SELECT COUNT(*) FROM policy_versions WHERE policy = ?", (name,)).fetchone()[0]
            if count >= MAX_VERSIONS:
                raise VersionsLimitExceeded(
                    f"policy {name} already has {MAX_VERSIONS} versions: delete one before creating another"
                )
            version = row["next_version"]
            db.execute("INSERT INTO policy_versions VALUES (?, ?, ?, ?)", (name, version, text, now))
            default = version if set_as_default else row["default_version"]
            db.execute(
                "UPDATE policies SET next_version = ?, default_version = ?, modified = ? WHERE name = ?",
                (version + 1, default, now, name),
            )
        return {"policyArn": self.arns.policy(name), "policyDocument": text, "policyVersionId": str(version),
                "isDefaultVersion": set_as_default}

    def get_version(self, name: str, version_id: str) -> dict[str, Any]:
        version = _version_number(version_id)
        with self.store.transaction(write=False) as db:
            policy = self._row(db, name)
            row = db.execute(
                "SELECT * FROM policy_versions WHERE policy = ? AND version = ?", (name, version)
            ).fetchone()
        if row is None:
            raise ResourceNotFound(f"policy {name} has no version {version_id}")
        return {
            "policyArn": self.arns.policy(name), "policyName": name, "policyDocument": row["document"],
            "policyVersionId": str(version), "isDefaultVersion": version == policy["default_version"],
            "creationDate": row["created"], "lastModifiedDate": row["created"], "generationId": str(version),
        }

    def list_versions(self, name: str) -> builtins.list[dict[str, Any]]:
        with self.store.transaction(write=False) as db:
            policy = self._row(db, name)
            rows = db.execute(
                "SELECT version, created FROM policy_versions WHERE policy = ? ORDER BY version DESC", (name,)
            ).fetchall()
        return [{"versionId": str(r["version"]), "isDefaultVersion": r["version"] == policy["default_version"],
                 "createDate": r["created"]} for r in rows]

    def set_default_version(self, name: str, version_id: str) -> None:
        self.get_version(name, version_id)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE policies SET default_version = ?, modified = ? WHERE name = ?",
                (_version_number(version_id), self.store.now(), name),
            )

    def delete_version(self, name: str, version_id: str) -> None:
        if self.get_version(name, version_id)["isDefaultVersion"]:
            raise DeleteConflict(f"version {version_id} is the default version of policy {name}: "
                                 "make another version the default first, or delete the policy")
        with self.store.transaction() as db:
            db.execute(
                "DELETE FROM policy_versions WHERE policy = ? AND version = ?", (name, _version_number(version_id))
            )

    def attach(self, name: str, target: str) -> None:
        """Attach to a certificate ARN or a thing group ARN (both must exist)."""
        kind, target_id = self._target(target)
        with self.store.transaction() as db:
            self._row(db, name)
            db.execute("INSERT OR IGNORE INTO policy_targets VALUES (?, ?, ?)", (name, kind, target_id))

    def detach(self, name: str, target: str) -> None:
        kind, target_id = self._target(target)
        with self.store.transaction() as db:
            self._row(db, name)
            db.execute(
                "DELETE FROM policy_targets WHERE policy = ? AND kind = ? AND target = ?", (name, kind, target_id)
            )

    def targets(self, name: str) -> builtins.list[str]:
        with self.store.transaction(write=False) as db:
            self._row(db, name)
            rows = db.execute(
                "SELECT kind, target FROM policy_targets WHERE policy = ? ORDER BY kind, target", (name,)
            ).fetchall()
        return [self._arn(r["kind"], r["target"]) for r in rows]

    def attached_to(self, target: str) -> builtins.list[str]:
        """Names of the policies attached directly to a certificate or thing group ARN."""
        kind, target_id = self._target(target, must_exist=False)
        with self.store.transaction(write=False) as db:
            rows = db.execute(
                "SELECT policy FROM policy_targets WHERE kind = ? AND target = ? ORDER BY policy", (kind, target_id)
            ).fetchall()
        return [r["policy"] for r in rows]

    def _target(self, target: str, must_exist: bool = True) -> tuple[str, str]:
        kind, target_id = self.arns.parse_target(target)
        if kind == "cert":
            target_id = names.certificate_id(target_id)
        if must_exist:
            table = "certificates WHERE id" if kind == "cert" else "thing_groups WHERE name"
            with self.store.transaction(write=False) as db:
                if db.execute(f"SELECT 1 FROM {table} = ?", (target_id,)).fetchone() is None:
                    what = "certificate" if kind == "cert" else "thing group"
                    raise ResourceNotFound(f"{what} {target_id} does not exist")
        return kind, target_id

    def _arn(self, kind: str, target_id: str) -> str:
        return self.arns.cert(target_id) if kind == "cert" else self.arns.thing_group(target_id)

    @staticmethod
    def _row(db: Any, name: str) -> Any:
        return require(db, "policies", "name", name, "policy")


def _version_number(version_id: str) -> int:
    if not str(version_id).isdigit():
        raise InvalidRequest(f"invalid policy version id {version_id!r}: must be a number")
    return int(version_id)
