//! `GET /api/openapi.json`: the JSON API's OpenAPI description, generated from the
//! handlers' annotations and the response types (utoipa), never written by hand. What
//! every route may also answer (the auth layer's 401, 403 and 429) is added to each
//! operation here, in one place.

use axum::Extension;
use axum::http::Method;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, builds};
use crate::auth::Access;
use crate::auth::layer::RouteRule;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xbuild-rs coordinator",
        description = "Queue, inspect, retry and cancel builds. Send `Authorization: Bearer <token>` (`coordinator token create`); reads need none when the coordinator allows anonymous reading."
    ),
    paths(
        builds::list,
        builds::enqueue,
        builds::get,
        builds::record,
        builds::units,
        builds::retry,
        builds::cancel,
        builds::poll,
        admin::audit_json,
    ),
    modifiers(&AuthResponses),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The auth layer's answers, on every operation, and the bearer scheme.
struct AuthResponses;

impl Modify for AuthResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let text = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "text/plain",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
                        ))
                        .build(),
                )
                .build()
        };
        for item in api.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let r = &mut op.responses.responses;
                r.insert("401".into(), text("no or bad credentials").into());
                r.insert(
                    "403".into(),
                    text("the token lacks the role this needs").into(),
                );
                r.insert("429".into(), text("over the token's rate limit").into());
            }
        }
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The description, made once when the router is built: the `/api/openapi.json` body.
#[derive(Debug, Clone)]
pub(super) struct Document(pub(super) axum::body::Bytes);

/// The description for a coordinator with `rules`, as JSON: where anonymous reading is
/// on, the reads say that a token is optional.
pub(super) fn document(rules: &[RouteRule], anonymous_read: bool) -> Document {
    let mut doc = ApiDoc::openapi();
    if anonymous_read {
        for (path, item) in doc.paths.paths.iter_mut() {
            let read = rules
                .iter()
                .any(|r| r.path == path && r.method == Method::GET && r.access == Access::Read);
            if let (true, Some(op)) = (read, item.get.as_mut()) {
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                ]);
            }
        }
    }
    // Serializing types utoipa built cannot fail; an empty body would show if it did.
    Document(doc.to_json().unwrap_or_default().into())
}

/// `GET /api/openapi.json`.
pub(super) async fn json(Extension(doc): Extension<Document>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn every_api_route_of_the_router_is_described() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::ApiDoc::openapi().to_json().unwrap()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for rule in crate::api::http::routes() {
            if !rule.path.starts_with("/api/") || rule.path == "/api/openapi.json" {
                continue;
            }
            let method = rule.method.as_str().to_ascii_lowercase();
            assert!(
                paths
                    .get(rule.path)
                    .is_some_and(|p| p.get(&method).is_some()),
                "{} {} is not in the OpenAPI description",
                rule.method,
                rule.path
            );
        }
    }
}
