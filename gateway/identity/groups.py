"""Static thing groups: a hierarchy (one parent each, at most 7 levels) and their member things."""

from __future__ import annotations

import builtins
import json
import sqlite3
import uuid
from typing import Any

from gateway.identity import names
from gateway.identity.awserrors import InvalidRequest, ResourceAlreadyExists, check_version
from gateway.identity.store import Page, Store, require

MAX_DEPTH = 7


class ThingGroups:
    """Create, describe, list and delete groups; add and remove things."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.arns = store.arns

    def create(
        self, name: str, parent: str | None = None, description: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        names.thing_name(name, "thing group name")
        if description is not None:
            names.description(description)
        attrs = names.attributes(attributes or {}, with_type=True)
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM thing_groups WHERE name = ?", (name,)).fetchone():
                raise ResourceAlreadyExists(f"thing group {name} already exists")
            if parent is not None and len(self._lineage(db, parent)) >= MAX_DEPTH:
                raise InvalidRequest(f"thing group {parent} is at the maximum depth {MAX_DEPTH}: no child allowed")
            group_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO thing_groups VALUES (?, ?, ?, ?, ?, 1, ?)",
                (name, group_id, parent, description, json.dumps(attrs, sort_keys=True), self.store.now()),
            )
        return {"thingGroupName": name, "thingGroupArn": self.arns.thing_group(name), "thingGroupId": group_id}

    def describe(self, name: str) -> dict[str, Any]:
        with self.store.transaction(write=False) as db:
            row = _group_row(db, name)
            ancestors = self._lineage(db, name)[1:]
        properties: dict[str, Any] = {"attributePayload": {"attributes": json.loads(row["attributes"])}}
        if row["description"] is not None:
            properties["thingGroupDescription"] = row["description"]
        metadata: dict[str, Any] = {"creationDate": row["created"], "rootToParentThingGroups": [
            {"groupName": g, "groupArn": self.arns.thing_group(g)} for g in reversed(ancestors)
        ]}
        if row["parent"] is not None:
            metadata["parentGroupName"] = row["parent"]
        return {
            "thingGroupName": name, "thingGroupId": row["id"], "thingGroupArn": self.arns.thing_group(name),
            "version": row["version"], "thingGroupProperties": properties, "thingGroupMetadata": metadata,
        }

    def update(
        self, name: str, description: str | None = None, attributes: dict[str, str] | None = None,
        merge: bool = False, expected_version: int | None = None,
    ) -> int:
        """Change a group's description or attributes; returns the new version."""
        if description is not None:
            names.description(description)
        with self.store.transaction() as db:
            row = _group_row(db, name)
            check_version(f"thing group {name}", row["version"], expected_version)
            attrs = names.patch_attributes(json.loads(row["attributes"]), attributes, merge)
            names.attributes(attrs, with_type=True)
            db.execute(
                "UPDATE thing_groups SET description = ?, attributes = ?, version = version + 1 WHERE name = ?",
                (row["description"] if description is None else description, json.dumps(attrs, sort_keys=True), name),
            )
        return int(row["version"]) + 1

    def delete(self, name: str) -> None:
        """Delete a group without child groups (no-op when it does not exist); its policies are detached."""
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM thing_groups WHERE name = ?", (name,)).fetchone() is None:
                return
            if db.execute("SELECT 1 FROM thing_groups WHERE parent = ?", (name,)).fetchone():
                raise InvalidRequest(f"thing group {name} still has child groups: delete them first")
            db.execute("DELETE FROM group_members WHERE group_name = ?", (name,))
            db.execute("DELETE FROM policy_targets WHERE kind = 'thinggroup' AND target = ?", (name,))
            db.execute("DELETE FROM thing_groups WHERE name = ?", (name,))

    def list(
        self, parent: str | None = None, name_prefix: str | None = None, next_token: str | None = None,
        max_results: int | None = None,
    ) -> Page:
        where: list[str] = []
        params: list[object] = []
        if parent is not None:
            where.append("parent = ?")
            params.append(parent)
        if name_prefix is not None:
            where.append("substr(name, 1, ?) = ?")
            params.extend([len(name_prefix), name_prefix])
        rows, token = self.store.page("SELECT name FROM thing_groups", "name", where, params, next_token, max_results)
        return Page([{"groupName": r["name"], "groupArn": self.arns.thing_group(r["name"])} for r in rows], token)

    def add_thing(self, group: str, thing: str) -> None:
        with self.store.transaction() as db:
            _group_row(db, group)
            require(db, "things", "name", thing, "thing")
            db.execute("INSERT OR IGNORE INTO group_members VALUES (?, ?)", (group, thing))

    def remove_thing(self, group: str, thing: str) -> None:
        with self.store.transaction() as db:
            _group_row(db, group)
            db.execute("DELETE FROM group_members WHERE group_name = ? AND thing = ?", (group, thing))

    def things_in(self, group: str, recursive: bool = False) -> builtins.list[str]:
        """Names of the things in a group (and, when `recursive`, in its descendants)."""
        with self.store.transaction(write=False) as db:
            _group_row(db, group)
            groups = self._descendants(db, group) if recursive else [group]
            marks = ",".join("?" * len(groups))
            rows = db.execute(
                f"SELECT DISTINCT thing FROM group_members WHERE group_name IN ({marks}) ORDER BY thing", groups
            ).fetchall()
        return [r["thing"] for r in rows]

    def groups_of(self, thing: str, inherited: bool = False) -> builtins.list[str]:
        """The groups a thing belongs to directly, or with `inherited` also all their ancestors."""
        with self.store.transaction(write=False) as db:
            direct = [r["group_name"] for r in db.execute(
                "SELECT group_name FROM group_members WHERE thing = ? ORDER BY group_name", (thing,)
            )]
            if not inherited:
                return direct
            found: dict[str, None] = {}
            for group in direct:
                found.update(dict.fromkeys(self._lineage(db, group)))
        return list(found)

    @staticmethod
    def _lineage(db: sqlite3.Connection, name: str) -> builtins.list[str]:
        """`name` followed by its parent, grandparent, … up to the root."""
        chain: list[str] = []
        current: str | None = name
        while current is not None and current not in chain:
            chain.append(current)
            current = _group_row(db, current)["parent"]
        return chain

    @staticmethod
    def _descendants(db: sqlite3.Connection, name: str) -> builtins.list[str]:
        found, frontier = [name], [name]
        while frontier:
            marks = ",".join("?" * len(frontier))
            frontier = [r["name"] for r in db.execute(
                f"SELECT name FROM thing_groups WHERE parent IN ({marks})", frontier
            )]
            found.extend(frontier)
        return found


def _group_row(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    return require(db, "thing_groups", "name", name, "thing group")
