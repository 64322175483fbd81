//! PhysicalResourceIds: the format this build mints, the formats it reads, and whether an Update
//! is a replacement (pure, table-tested).
//!
//! CloudFormation reads a *different* PhysicalResourceId in an Update's answer as a replacement:
//! once the stack update is done it sends a Delete for the old id with the old properties. So the
//! id is minted once, on Create, and an Update echoes the id it was given, in whatever format an
//! earlier provider minted it, unless the change really is a replacement: the `TableName` or the
//! home Region changed. A future id format therefore never turns an ordinary update into a
//! replacement (and a Delete of the id the live resource still uses).
//!
//! * **v1** (minted by this build): `v1/<home Region>/<stack name>/<TableName>/<LogicalResourceId>`,
//!   e.g. `v1/us-east-1/user-sessions/UserSessions/UserSessionsReplicas`. Deterministic (a retried
//!   or continued Create answers the same id), readable, unique per stack (two stacks managing one
//!   table under the same LogicalResourceId have different ids, so different records, see
//!   [`crate::record`]), different when the table changes. When the properties do not even name a
//!   valid table the table part is `(invalid)`: `(` is not allowed in table names, so that id never
//!   names a real table, and its Delete succeeds at once.
//! * **legacy**: `<home Region>/<TableName>/<LogicalResourceId>`, what this provisioner minted
//!   before ids were versioned. Read for its home Region and table.
//! * anything else: an id another provider minted (e.g. `global-table-replicas/UserSessions`);
//!   nothing is read from it, and it is echoed as is.
//!
//! Never random, never empty (an empty id is "Invalid PhysicalResourceId"), at most 1 KB.

use crate::response::{MAX_PHYSICAL_ID_BYTES, cap};
use shared::topology::{is_region_name, is_table_name};

pub const V1_MARKER: &str = "v1";
const INVALID_TABLE: &str = "(invalid)";

/// The v1 id of the resource `logical_resource_id` of `stack_name` managing `table` (see the
/// module docs).
pub fn mint(home_region: &str, stack_name: &str, table: Option<&str>, logical_resource_id: &str) -> String {
    let table = table.unwrap_or(INVALID_TABLE);
    cap(format!("{V1_MARKER}/{home_region}/{stack_name}/{table}/{logical_resource_id}"), MAX_PHYSICAL_ID_BYTES)
}

/// The id this provisioner answered for the resource before ids were versioned.
pub fn legacy(home_region: &str, table: &str, logical_resource_id: &str) -> String {
    cap(format!("{home_region}/{table}/{logical_resource_id}"), MAX_PHYSICAL_ID_BYTES)
}

/// Whether the id names no valid table (a Create that failed on its properties): nothing to delete.
pub fn names_no_table(id: &str) -> bool {
    id.contains(&format!("/{INVALID_TABLE}/"))
}

/// What an id says about the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format<'a> {
    V1 {
        home: &'a str,
        table: &'a str,
    },
    Legacy {
        home: &'a str,
        table: &'a str,
    },
    /// Another provider's id: nothing can be read from it.
    Unknown,
}

impl<'a> Format<'a> {
    pub fn of(id: &'a str) -> Self {
        let table_ok = |t: &str| is_table_name(t) || t == INVALID_TABLE;
        if let Some(rest) = id.strip_prefix("v1/") {
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            if let [home, _stack, table, logical] = parts.as_slice()
                && is_region_name(home)
                && table_ok(table)
                && !logical.is_empty()
            {
                return Format::V1 { home, table };
            }
            return Format::Unknown;
        }
        match id.splitn(3, '/').collect::<Vec<_>>().as_slice() {
            [home, table, logical] if is_region_name(home) && table_ok(table) && !logical.is_empty() => {
                Format::Legacy { home, table }
            }
            _ => Format::Unknown,
        }
    }

    fn home_and_table(&self) -> Option<(&'a str, &'a str)> {
        match *self {
            Format::V1 { home, table } | Format::Legacy { home, table } => Some((home, table)),
            Format::Unknown => None,
        }
    }
}

/// Why an Update is a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    TableName { old: String, new: String },
    HomeRegion { old: String, new: String },
}

/// The id an Update answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateId {
    pub id: String,
    /// `Some` when the Update is a replacement (and `id` a new one).
    pub replacement: Option<Replacement>,
}

/// The Update's request, as far as the id is concerned.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRequest<'a> {
    /// The PhysicalResourceId CloudFormation sent.
    pub id: &'a str,
    pub home_region: &'a str,
    pub stack_name: &'a str,
    pub logical_resource_id: &'a str,
    pub new_table: &'a str,
    /// `OldResourceProperties.TableName`, when readable.
    pub old_table: Option<&'a str>,
}

/// Echo the given id unless the Update provably moves the resource: the old properties (or, when
/// they name no readable table, the id itself) name another table, or the id names another home
/// Region. When nothing says what the old table was, the id is echoed: a false replacement would
/// make CloudFormation delete the id the live resource relies on; a missed one only leaves the old
/// table's replicas in place.
pub fn for_update(request: &UpdateRequest<'_>) -> UpdateId {
    let from_id = Format::of(request.id).home_and_table();
    let old_table = request.old_table.or(from_id.map(|(_, table)| table));
    let replacement = match (old_table, from_id) {
        (Some(old), _) if old != request.new_table => {
            Some(Replacement::TableName { old: old.to_owned(), new: request.new_table.to_owned() })
        }
        (_, Some((home, _))) if home != request.home_region => {
            Some(Replacement::HomeRegion { old: home.to_owned(), new: request.home_region.to_owned() })
        }
        _ => None,
    };
    let id = match replacement {
        Some(_) => mint(request.home_region, request.stack_name, Some(request.new_table), request.logical_resource_id),
        None => request.id.to_owned(),
    };
    UpdateId { id, replacement }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_ids_are_deterministic_readable_versioned_and_bounded() {
        assert_eq!(
            mint("us-east-1", "user-sessions", Some("UserSessions"), "UserSessionsReplicas"),
            "v1/us-east-1/user-sessions/UserSessions/UserSessionsReplicas"
        );
        assert_eq!(mint("us-east-1", "s", None, "R"), "v1/us-east-1/s/(invalid)/R");
        assert!(names_no_table(&mint("us-east-1", "s", None, "R")));
        assert!(names_no_table("us-east-1/(invalid)/R"), "the legacy form too");
        assert!(!names_no_table(&mint("us-east-1", "s", Some("T12"), "R")));
        let long = mint("us-east-1", "s", Some(&"t".repeat(255)), &"L".repeat(2000));
        assert_eq!(long.len(), MAX_PHYSICAL_ID_BYTES);
        assert_ne!(long, mint("us-east-1", "s", Some(&"t".repeat(255)), &format!("{}M", "L".repeat(1999))));
        assert_eq!(legacy("us-east-1", "UserSessions", "R"), "us-east-1/UserSessions/R");
    }

    #[test]
    fn ids_of_every_format_are_read_for_what_they_say() {
        let cases = [
            ("v1/us-east-1/user-sessions/UserSessions/R", Format::V1 { home: "us-east-1", table: "UserSessions" }),
            ("v1/eu-west-1/s/(invalid)/R", Format::V1 { home: "eu-west-1", table: "(invalid)" }),
            (
                "us-east-1/UserSessions/UserSessionsReplicas",
                Format::Legacy { home: "us-east-1", table: "UserSessions" },
            ),
            ("us-east-1/(invalid)/R", Format::Legacy { home: "us-east-1", table: "(invalid)" }),
            ("global-table-replicas/UserSessions", Format::Unknown),
            ("v1/us-east-1/UserSessions/R", Format::Unknown),
            ("v2/us-east-1/s/UserSessions/R", Format::Unknown),
            ("UserSessions", Format::Unknown),
            ("nowhere/UserSessions/R", Format::Unknown),
            ("us-east-1/a b/R", Format::Unknown),
            ("", Format::Unknown),
        ];
        for (id, want) in cases {
            assert_eq!(Format::of(id), want, "{id}");
        }
    }

    #[test]
    fn an_update_echoes_its_id_unless_the_table_or_the_home_region_changed() {
        let request = |id: &'static str, new: &'static str, old: Option<&'static str>| UpdateRequest {
            id,
            home_region: "us-east-1",
            stack_name: "user-sessions",
            logical_resource_id: "R",
            new_table: new,
            old_table: old,
        };
        let echo = |id: &str| UpdateId { id: id.to_owned(), replacement: None };
        let table = |old: &str, new: &str| Replacement::TableName { old: old.into(), new: new.into() };
        // (request, answer)
        let cases = [
            // Same table: every format is echoed as is, whatever this build would mint today.
            (request("v1/us-east-1/user-sessions/T01/R", "T01", Some("T01")), echo("v1/us-east-1/user-sessions/T01/R")),
            (request("us-east-1/T01/R", "T01", Some("T01")), echo("us-east-1/T01/R")),
            (request("global-table-replicas/T01", "T01", Some("T01")), echo("global-table-replicas/T01")),
            (request("v9:something-new", "T01", Some("T01")), echo("v9:something-new")),
            // Old properties unreadable: the id tells, when it can; otherwise echo.
            (request("us-east-1/T01/R", "T01", None), echo("us-east-1/T01/R")),
            (request("global-table-replicas/T01", "T02", None), echo("global-table-replicas/T01")),
            // A new TableName is a replacement, whatever the id's format.
            (
                request("v1/us-east-1/user-sessions/T01/R", "T02", Some("T01")),
                UpdateId { id: "v1/us-east-1/user-sessions/T02/R".into(), replacement: Some(table("T01", "T02")) },
            ),
            (
                request("global-table-replicas/T01", "T02", Some("T01")),
                UpdateId { id: "v1/us-east-1/user-sessions/T02/R".into(), replacement: Some(table("T01", "T02")) },
            ),
            (
                request("us-east-1/T01/R", "T02", None),
                UpdateId { id: "v1/us-east-1/user-sessions/T02/R".into(), replacement: Some(table("T01", "T02")) },
            ),
            // The old properties are CloudFormation's record of the resource: they win over the id.
            (request("us-east-1/T00/R", "T01", Some("T01")), echo("us-east-1/T00/R")),
            // Another home Region (the id says so): a replacement.
            (
                request("v1/eu-west-1/user-sessions/T01/R", "T01", Some("T01")),
                UpdateId {
                    id: "v1/us-east-1/user-sessions/T01/R".into(),
                    replacement: Some(Replacement::HomeRegion { old: "eu-west-1".into(), new: "us-east-1".into() }),
                },
            ),
        ];
        for (request, want) in cases {
            assert_eq!(for_update(&request), want, "{request:?}");
        }
    }
}
