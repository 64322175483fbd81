//! Every `events/provisioner-*.json` file is a real-shaped CloudFormation custom-resource event
//! (the same files serve `cargo lambda invoke --data-file`): each is one this function accepts,
//! except the forged sample, which differs from the Create only in its ResponseURL and is refused.

mod common;

use common::*;
use provisioner::identity;
use provisioner::properties::{LenientProperties, Properties, Rules};
use provisioner::regions::KnownRegions;
use provisioner::request::{self, Envelope, Request};
use provisioner::trust::{self, Origin, Untrusted};
use serde_json::json;

const FORGED: &str = "provisioner-create-forged-response-url.json";

/// The function as deployed (no local ResponseURL switch).
fn deployed() -> Origin<'static> {
    Origin { home_region: HOME, function_arn: FUNCTION_ARN, allow_local_response_url: false }
}

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
        [
            "provisioner-create-forged-response-url.json",
            "provisioner-create-strong.json",
            "provisioner-create.json",
            "provisioner-delete.json",
            "provisioner-update-old-id.json",
            "provisioner-update.json"
        ]
    );
}

#[test]
fn every_event_file_parses_validates_and_names_a_stable_resource() {
    let known = KnownRegions::default();
    let rules = Rules { home_region: HOME, known_regions: &known };
    // The id the Create answers; the upgrade sample carries the id of the provisioner before ids
    // were versioned (an Update echoes it).
    let id = identity::mint(HOME, STACK_NAME, Some("UserSessions"), "UserSessionsReplicas");
    let old_id = identity::legacy(HOME, "UserSessions", "UserSessionsReplicas");
    for name in provisioner_event_files().into_iter().filter(|n| n != FORGED) {
        let event = event_file(&name);
        let envelope = Envelope::read(&event);
        assert_eq!(
            trust::check(&deployed(), envelope.response_url.as_deref(), &envelope.stack_id),
            Ok(()),
            "{name}: CloudFormation's response bucket, a stack of this function"
        );
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
                let given = if name.contains("old-id") { &old_id } else { &id };
                assert_eq!(&u.physical_resource_id, given, "{name}");
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
        assert!(name.starts_with(&format!("provisioner-{kind}")), "{name} is a {kind}");
        let props = Properties::parse(properties, &rules).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(props.table_name, "UserSessions", "{name}");
        assert_eq!(props.service_timeout.as_secs(), 900, "{name}");
    }
}

#[test]
fn the_forged_sample_is_the_create_with_a_look_alike_response_url() {
    let forged = event_file(FORGED);
    let envelope = Envelope::read(&forged);
    let refused = trust::check(&deployed(), envelope.response_url.as_deref(), &envelope.stack_id);
    assert!(matches!(refused, Err(Untrusted::Host { .. })), "{refused:?}");
    let mut create = event_file("provisioner-create.json");
    for key in ["ResponseURL", "RequestId"] {
        create[key] = forged[key].clone();
    }
    assert_eq!(create, forged, "only the ResponseURL (and the RequestId) differ");
    assert!(forged["ResponseURL"].as_str().is_some_and(|u| u.starts_with("https://")), "{}", json!(forged));
}

#[test]
fn the_strong_sample_is_an_mrsc_set_of_two_replicas_and_a_witness() {
    let known = KnownRegions::default();
    let rules = Rules { home_region: HOME, known_regions: &known };
    let event = event_file("provisioner-create-strong.json");
    let props = Properties::parse(&event["ResourceProperties"], &rules).expect("valid");
    assert_eq!(props.consistency, provisioner::consistency::Consistency::Strong);
    assert_eq!(props.region_names(), ["us-east-1", "us-west-2"]);
    assert_eq!(props.witness.as_deref(), Some("us-east-2"));
}
