//! Kubernetes Events about RenderJobs: one Event per distinct message.
//!
//! kube-runtime's `Recorder`, like client-go's, keys an event series by type, reason and action
//! only: a second `ShardAttemptFailed` about another shard merely raises the first Event's
//! count, and `kubectl describe` goes on showing the first shard's message. Here the message is
//! part of the key. The same message again within [`SERIES_WINDOW`] becomes a series (one
//! patch of its count), as the API's Event series are meant to be; anything new is an Event of
//! its own.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::decide::EventNote;

/// How long a published message is remembered for a series (kube-runtime's recorder keeps its
/// series as long).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_secs(6 * 60);

/// What makes two events the same occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>),
    warning: bool,
    reason: String,
    note: String,
}

/// An Event published within the window.
#[derive(Debug, Clone)]
struct Published {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// Publishes the events a reconcile decided, as `events.k8s.io/v1` Events.
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
}

impl EventPublisher {
    /// `controller` is the reporting controller; `instance` this replica.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or the next count of the same message's
    /// series.
    pub async fn publish(
        &self,
        event: &EventNote,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding: (
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            warning: event.warning,
            reason: event.reason.clone(),
            note: event.note.clone(),
        };
        // Not held across requests: reconciles of other jobs publish meanwhile.
        let known = {
            let mut published = self.published();
            published.retain(|_, p| p.last + SERIES_WINDOW > now);
            published.get(&key).cloned()
        };
        if let Some(series) = known {
            let count = series.count + 1;
            let patch = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }});
            let events: Api<Event> = Api::namespaced(self.client.clone(), &series.namespace);
            match events
                .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    let last = Published {
                        count,
                        last: now,
                        ..series
                    };
                    self.published().insert(key, last);
                    return Ok(());
                }
                // Gone (expired, or deleted by someone): start it again.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let created = self.new_event(event, regarding, now);
        let namespace = created.metadata.namespace.clone().unwrap_or_default();
        let name = created.metadata.name.clone().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &created)
            .await?;
        let first = Published {
            name,
            namespace,
            count: 1,
            last: now,
        };
        self.published().insert(key, first);
        Ok(())
    }

    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Published>> {
        // A panic elsewhere cannot leave the map half-written: every change is one insert.
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_event(&self, event: &EventNote, regarding: &ObjectReference, now: Timestamp) -> Event {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                // Unique per object and instant, like the names client-go gives Events.
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(event.reason.clone()),
            note: Some(event.note.clone()),
            action: Some("Reconcile".into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;

    fn reference() -> ObjectReference {
        ObjectReference {
            api_version: Some("tessera.dev/v1alpha1".into()),
            kind: Some("RenderJob".into()),
            name: Some("shot010".into()),
            namespace: Some("lighting".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        }
    }

    fn failed(shard: u32) -> EventNote {
        EventNote {
            warning: true,
            reason: "ShardAttemptFailed".into(),
            note: format!("shard {shard} attempt 0 failed"),
        }
    }

    /// Answers one request, checks its method and path, and returns its body.
    async fn answer(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
        method: Method,
        path: &str,
    ) -> serde_json::Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method);
        assert!(
            request.uri().path().starts_with(path),
            "{} does not start with {path}",
            request.uri()
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut reply = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "lighting"}, "eventTime": null});
        if let Some(name) = body.pointer("/metadata/name") {
            reply["metadata"]["name"] = name.clone();
        }
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&reply).unwrap(),
        )));
        body
    }

    #[tokio::test]
    async fn each_message_is_an_event_of_its_own_and_a_repeat_is_its_series() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let publisher =
            EventPublisher::new(Client::new(service, "default"), "tessera-operator", "pod-a");
        let verify = tokio::spawn(async move {
            let events = "/apis/events.k8s.io/v1/namespaces/lighting/events";
            let first = answer(&mut handle, Method::POST, events).await;
            assert_eq!(first["note"], "shard 2 attempt 0 failed");
            assert_eq!(first["reason"], "ShardAttemptFailed");
            assert_eq!(first["type"], "Warning");
            assert_eq!(first["regarding"]["uid"], "uid-1");
            assert_eq!(first["reportingInstance"], "pod-a");
            // Another shard: not a count of the first, an Event whose message names it.
            let second = answer(&mut handle, Method::POST, events).await;
            assert_eq!(second["note"], "shard 5 attempt 0 failed");
            assert_ne!(second["metadata"]["name"], first["metadata"]["name"]);
            // The first message again: its series.
            let name = first["metadata"]["name"].as_str().unwrap();
            let series = answer(&mut handle, Method::PATCH, &format!("{events}/{name}")).await;
            assert_eq!(series["series"]["count"], 2);
            assert!(series.get("note").is_none(), "{series}");
            let series = answer(&mut handle, Method::PATCH, &format!("{events}/{name}")).await;
            assert_eq!(series["series"]["count"], 3);
            handle
        });
        for shard in [2, 5, 2, 2] {
            publisher
                .publish(&failed(shard), &reference())
                .await
                .unwrap();
        }
        let mut handle = tokio::time::timeout(std::time::Duration::from_secs(10), verify)
            .await
            .expect("requests in time")
            .unwrap();
        drop(publisher);
        assert!(handle.next_request().await.is_none(), "no other request");
    }
}
