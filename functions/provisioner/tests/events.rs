//! Every `events/provisioner-*.json` file is a real-shaped CloudFormation custom-resource event
//! this function accepts (the same files serve `cargo lambda invoke --data-file`).

mod common;

use common::*;
use provisioner::properties::{LenientProperties, Properties, Rules};
use provisioner::regions::KnownRegions;
use provisioner::request::{self, Envelope, Request};
use provisioner::response::physical_resource_id;

fn provisioner_event_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("provisioner-") && name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn there_are_create_update_and_delete_events() {
    assert_eq!(
        provisioner_event_files(),
        ["provisioner-create.json", "provisioner-delete.json", "provisioner-update.json"]
    );
}

#[test]
fn every_event_file_parses_validates_and_names_a_stable_resource() {
    let known = KnownRegions::default();
    let rules = Rules { home_region: HOME, known_regions: &known };
    let id = physical_resource_id(HOME, Some("UserSessions"), "UserSessionsReplicas");
    for name in provisioner_event_files() {
        let event = event_file(&name);
        let envelope = Envelope::read(&event);
        assert!(envelope.response_url.as_deref().is_some_and(|u| u.starts_with("https://")), "{name}");
        assert_eq!(
            envelope.service_timeout.map(|t| t.as_secs()),
            Some(900),
            "{name}: CloudFormation sends ServiceTimeout too"
        );
        let (request, continuation) = request::parse(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(continuation, None, "{name}");
        let (kind, properties) = match &request {
            Request::Create(c) => ("create", &c.resource_properties),
            Request::Update(u) => {
                assert_eq!(u.physical_resource_id, id, "{name}");
                let old =
                    Properties::parse(&u.old_resource_properties, &rules).unwrap_or_else(|e| panic!("{name} old: {e}"));
                assert_eq!(
                    LenientProperties::read(&u.old_resource_properties).table_name.as_deref(),
                    Some(old.table_name.as_str())
                );
                ("update", &u.resource_properties)
            }
            Request::Delete(d) => {
                assert_eq!(d.physical_resource_id, id, "{name}");
                ("delete", &d.resource_properties)
            }
            other => panic!("{name}: unexpected {other:?}"),
        };
        assert_eq!(name, format!("provisioner-{kind}.json"));
        let props = Properties::parse(properties, &rules).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(props.table_name, "UserSessions", "{name}");
        assert_eq!(props.service_timeout.as_secs(), 900, "{name}");
    }
}
