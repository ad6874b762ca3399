//! kube-rs's event Recorder against the server: events.k8s.io/v1 create and series patch, and the
//! same events seen through core/v1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use serde_json::json;

use common::{api_error, start};

async fn service_reference(client: kube::Client) -> ObjectReference {
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc)
        .await
        .unwrap()
        .object_ref(&())
}

fn allocated() -> RecordedEvent {
    RecordedEvent {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("Assigned IP [\"192.0.2.1\"]".into()),
        action: "Allocate".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn recorder_creates_an_events_v1_event_on_the_object() {
    let c = start().await;
    let reference = service_reference(c.client.clone()).await;
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: None,
        },
    );
    recorder.publish(&allocated(), &reference).await.unwrap();

    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("web"));
    assert_eq!(
        e.reporting_controller.as_deref(),
        Some("ferrolb-controller")
    );
    assert!(e.series.is_none());
}

#[tokio::test]
async fn repeated_event_becomes_a_series_through_a_patch() {
    let c = start().await;
    let reference = service_reference(c.client.clone()).await;
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: None,
        },
    );
    recorder.publish(&allocated(), &reference).await.unwrap();
    recorder.publish(&allocated(), &reference).await.unwrap();
    recorder.publish(&allocated(), &reference).await.unwrap();
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].series.as_ref().map(|s| s.count), Some(3));
}

#[tokio::test]
async fn events_v1_events_are_visible_through_core_v1_with_core_field_names() {
    let c = start().await;
    let reference = service_reference(c.client.clone()).await;
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: None,
        },
    );
    recorder.publish(&allocated(), &reference).await.unwrap();
    let core: Api<CoreEvent> = Api::namespaced(c.client.clone(), "default");
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=web,reason=IPAllocated"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].message.as_deref(),
        Some("Assigned IP [\"192.0.2.1\"]")
    );
    assert_eq!(list[0].involved_object.kind.as_deref(), Some("Service"));
    assert_eq!(
        list[0].reporting_component.as_deref(),
        Some("ferrolb-controller")
    );
}

#[tokio::test]
async fn events_v1_create_without_required_fields_is_invalid() {
    let c = start().await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let bare: Event =
        serde_json::from_value(json!({"metadata": {"name": "bare"}, "type": "Normal"})).unwrap();
    let err = api_error(events.create(&PostParams::default(), &bare).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let fields: Vec<String> = err
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(
        fields,
        vec![
            "eventTime",
            "reportingController",
            "reportingInstance",
            "action",
            "reason"
        ]
    );
}
