"""Things and thing types: the AWS IoT registry's device records."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from gateway.identity import names
from gateway.identity.awserrors import InvalidRequest, ResourceAlreadyExists, check_version
from gateway.identity.store import Page, Store, require

MAX_SEARCHABLE_ATTRIBUTES = 3


class Things:
    """Create, describe, update, list and delete things."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.arns = store.arns

    def create(
        self, name: str, thing_type: str | None = None, attributes: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Create a thing; creating an identical one again succeeds and returns the existing thing."""
        names.thing_name(name)
        attrs = names.attributes(attributes or {}, with_type=thing_type is not None)
        with self.store.transaction() as db:
            existing = db.execute("SELECT * FROM things WHERE name = ?", (name,)).fetchone()
            if existing is not None:
                if existing["type"] == thing_type and json.loads(existing["attributes"]) == attrs:
                    return self._created(existing)
                raise ResourceAlreadyExists(f"thing {name} already exists with a different type or attributes")
            if thing_type is not None:
                _usable_type(db, thing_type)
            thing_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO things VALUES (?, ?, ?, ?, 1, ?)",
                (name, thing_id, thing_type, json.dumps(attrs, sort_keys=True), self.store.now()),
            )
            row = db.execute("SELECT * FROM things WHERE name = ?", (name,)).fetchone()
        return self._created(row)

    def _created(self, row: sqlite3.Row) -> dict[str, Any]:
        return {"thingName": row["name"], "thingArn": self.arns.thing(row["name"]), "thingId": row["id"]}

    def describe(self, name: str) -> dict[str, Any]:
        with self.store.transaction(write=False) as db:
            row = _thing_row(db, name)
        result = {
            "defaultClientId": name, "thingName": name, "thingId": row["id"], "thingArn": self.arns.thing(name),
            "attributes": json.loads(row["attributes"]), "version": row["version"],
        }
        if row["type"] is not None:
            result["thingTypeName"] = row["type"]
        return result

    def exists(self, name: str) -> bool:
        with self.store.transaction(write=False) as db:
            return db.execute("SELECT 1 FROM things WHERE name = ?", (name,)).fetchone() is not None

    def update(
        self, name: str, thing_type: str | None = None, attributes: dict[str, str] | None = None,
        merge: bool = False, remove_thing_type: bool = False, expected_version: int | None = None,
    ) -> None:
        """Change a thing's type or attributes. With `merge`, attributes are merged and an empty value
        removes one; without it they replace the old set. Every update increments the version."""
        if thing_type is not None and remove_thing_type:
            raise InvalidRequest("give either a thing type or remove_thing_type, not both")
        with self.store.transaction() as db:
            row = _thing_row(db, name)
            check_version(f"thing {name}", row["version"], expected_version)
            new_type = None if remove_thing_type else (thing_type or row["type"])
            if thing_type is not None:
                _usable_type(db, thing_type)
            attrs = names.patch_attributes(json.loads(row["attributes"]), attributes, merge)
            names.attributes(attrs, with_type=new_type is not None)
            db.execute(
                "UPDATE things SET type = ?, attributes = ?, version = version + 1 WHERE name = ?",
                (new_type, json.dumps(attrs, sort_keys=True), name),
            )

    def delete(self, name: str, expected_version: int | None = None) -> None:
        """Delete a thing (no-op when it does not exist, as AWS does); its certificates must be detached."""
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM things WHERE name = ?", (name,)).fetchone()
            if row is None:
                return
            check_version(f"thing {name}", row["version"], expected_version)
            if db.execute("SELECT 1 FROM thing_principals WHERE thing = ?", (name,)).fetchone():
                raise InvalidRequest(f"thing {name} has certificates attached: detach them before deleting it")
            db.execute("DELETE FROM group_members WHERE thing = ?", (name,))
            db.execute("DELETE FROM things WHERE name = ?", (name,))

    def list(
        self, thing_type: str | None = None, attribute_name: str | None = None, attribute_value: str | None = None,
        use_prefix_attribute_value: bool = False, next_token: str | None = None, max_results: int | None = None,
    ) -> Page:
        """Things ordered by name, filtered by type and/or one attribute (exact or prefix match)."""
        where, params = [], []
        if thing_type is not None:
            where.append("type = ?")
            params.append(thing_type)
        if attribute_name is not None:
            where.append("json_extract(attributes, ?) IS NOT NULL")
            params.append(_json_path(attribute_name))
            if attribute_value is not None:
                op = "LIKE ? ESCAPE '\\'" if use_prefix_attribute_value else "= ?"
                where.append(f"json_extract(attributes, ?) {op}")
                params.append(_json_path(attribute_name))
                params.append(_like_prefix(attribute_value) if use_prefix_attribute_value else attribute_value)
        rows, token = self.store.page("SELECT * FROM things", "name", where, params, next_token, max_results)
        return Page([self._summary(r) for r in rows], token)

    def _summary(self, row: sqlite3.Row) -> dict[str, Any]:
        item = {"thingName": row["name"], "thingArn": self.arns.thing(row["name"]),
                "attributes": json.loads(row["attributes"]), "version": row["version"]}
        if row["type"] is not None:
            item["thingTypeName"] = row["type"]
        return item


class ThingTypes:
    """Create, describe, deprecate, list and delete thing types."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.arns = store.arns

    def create(
        self, name: str, description: str | None = None, searchable_attributes: list[str] | None = None
    ) -> dict[str, Any]:
        names.thing_name(name, "thing type name")
        if description is not None:
            names.description(description)
        searchable = list(searchable_attributes or [])
        if len(searchable) > MAX_SEARCHABLE_ATTRIBUTES:
            raise InvalidRequest(f"a thing type can have at most {MAX_SEARCHABLE_ATTRIBUTES} searchable attributes")
        names.attributes(dict.fromkeys(searchable, ""), with_type=True)
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM thing_types WHERE name = ?", (name,)).fetchone():
                raise ResourceAlreadyExists(f"thing type {name} already exists")
            type_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO thing_types VALUES (?, ?, ?, ?, 0, NULL, ?)",
                (name, type_id, description, json.dumps(searchable), self.store.now()),
            )
        return {"thingTypeName": name, "thingTypeArn": self.arns.thing_type(name), "thingTypeId": type_id}

    def describe(self, name: str) -> dict[str, Any]:
        with self.store.transaction(write=False) as db:
            row = _type_row(db, name)
        return {"thingTypeName": name, "thingTypeId": row["id"], **self._definition(row)}

    def _definition(self, row: sqlite3.Row) -> dict[str, Any]:
        properties: dict[str, Any] = {"searchableAttributes": json.loads(row["searchable"])}
        if row["description"] is not None:
            properties["thingTypeDescription"] = row["description"]
        metadata: dict[str, Any] = {"deprecated": bool(row["deprecated"]), "creationDate": row["created"]}
        if row["deprecation_date"] is not None:
            metadata["deprecationDate"] = row["deprecation_date"]
        return {"thingTypeArn": self.arns.thing_type(row["name"]), "thingTypeProperties": properties,
                "thingTypeMetadata": metadata}

    def list(self, next_token: str | None = None, max_results: int | None = None) -> Page:
        rows, token = self.store.page(
            "SELECT * FROM thing_types", "name", next_token=next_token, max_results=max_results
        )
        return Page([{"thingTypeName": r["name"], **self._definition(r)} for r in rows], token)

    def deprecate(self, name: str, undo: bool = False) -> None:
        """Deprecate a type (no new things may use it) or, with `undo`, make it usable again."""
        with self.store.transaction() as db:
            _type_row(db, name)
            db.execute(
                "UPDATE thing_types SET deprecated = ?, deprecation_date = ? WHERE name = ?",
                (0 if undo else 1, None if undo else self.store.now(), name),
            )

    def delete(self, name: str) -> None:
        """Delete a deprecated type that no thing uses any more."""
        with self.store.transaction() as db:
            row = _type_row(db, name)
            if not row["deprecated"]:
                raise InvalidRequest(f"thing type {name} must be deprecated before it can be deleted")
            if db.execute("SELECT 1 FROM things WHERE type = ?", (name,)).fetchone():
                raise InvalidRequest(f"thing type {name} is still used by things: change or delete them first")
            db.execute("DELETE FROM thing_types WHERE name = ?", (name,))


def _thing_row(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    return require(db, "things", "name", name, "thing")


def _type_row(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    return require(db, "thing_types", "name", name, "thing type")


def _usable_type(db: sqlite3.Connection, name: str) -> None:
    if _type_row(db, name)["deprecated"]:
        raise InvalidRequest(f"thing type {name} is deprecated: things cannot be given a deprecated type")


def _json_path(attribute: str) -> str:
    return '$."' + attribute.replace('"', "") + '"'


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
